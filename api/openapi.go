package api

import (
	"embed"
	"net/http"
)

// openapi.yaml describes every route and answer of the API; TestOpenAPI
// checks a live server's answers against it.
//
//go:embed openapi.yaml
var openapiFS embed.FS

// OpenAPI returns the API's OpenAPI 3 description.
func OpenAPI() []byte {
	b, _ := openapiFS.ReadFile("openapi.yaml")
	return b
}

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Write(OpenAPI())
}
