package zones

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkImportFile: `geodns import` of a 20,000-record master file.
// The YAML encoder keeps every event of a document until its end, so the
// records are encoded a name at a time (a 100,000-record file peaked at
// 870 MB of RSS before, 139 MB after, the output byte for byte the same).
func BenchmarkImportFile(b *testing.B) {
	var src strings.Builder
	src.WriteString("$ORIGIN big.example.\n$TTL 300\n@ SOA ns1 h 1 3600 600 1209600 60\n@ NS ns1\nns1 A 192.0.2.1\n")
	for i := range 20000 {
		fmt.Fprintf(&src, "h%d A 192.0.2.%d\n", i, i%250+1)
	}
	path := filepath.Join(b.TempDir(), "big.zone")
	if err := os.WriteFile(path, []byte(src.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := (Limits{}).ImportFile(path, "big.example."); err != nil {
			b.Fatal(err)
		}
	}
}
