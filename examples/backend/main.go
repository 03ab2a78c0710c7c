// Command backend is a stand-in for one site's web server in the demo:
// /healthz answers "ok" and / says which site answered.
//
//	backend --listen 127.0.0.2:8080 --site us-east
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.2:8080", "address to serve")
	site := flag.String("site", "us-east", "site name shown in answers")
	flag.Parse()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "hello from %s\n", *site) })
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Printf("site %s serving on %s", *site, *listen)
	log.Fatal(srv.ListenAndServe())
}
