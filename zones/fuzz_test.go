package zones

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func addFiles(f *testing.F, glob string) {
	files, _ := filepath.Glob(glob)
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(string(b))
		}
	}
}

// FuzzCompile: any YAML either compiles into a zone that answers lookups
// or is rejected with positioned errors; it never panics.
func FuzzCompile(f *testing.F) {
	addFiles(f, "testdata/good/*.yaml")
	addFiles(f, "testdata/bad/*.yaml")
	addFiles(f, "../examples/zones/*.yaml")
	f.Fuzz(func(t *testing.T, src string) {
		z, err := Compile("testdata/good/fuzz.example.yaml", []byte(src), "fuzz.example.", time.Unix(1700000000, 0), nil)
		if err != nil {
			for _, e := range Errors(err) {
				if e.File == "" || e.Line < 1 || e.Col < 1 {
					t.Fatalf("error without a position: %q", e.Error())
				}
			}
			return
		}
		for _, name := range []string{"fuzz.example.", "www.fuzz.example.", "a.b.c.fuzz.example.", "*.fuzz.example."} {
			for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeANY, dns.TypeDS, dns.TypeNS} {
				z.Lookup(name, qt, false, nil)
			}
		}
	})
}

// FuzzImportMaster: any master file either imports into YAML that this
// package can read back (valid or with positioned errors) or is refused.
func FuzzImportMaster(f *testing.F) {
	files, _ := filepath.Glob("../cmd/geodns/testdata/diff/*.zone")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(string(b))
		}
	}
	f.Add("@ 300 IN SOA a. b. 1 2 3 4 5\n@ 300 IN NS ns.\nx 60 IN TYPE65534 \\# 2 abcd\n")
	// The shape that stalled this fuzzer: one name with thousands of records.
	f.Add("@ 300 IN SOA a. b. 1 2 3 4 5\n@ 300 IN NS ns.\n$GENERATE 1-3000 big 300 IN TXT \"r$\"\n")
	f.Fuzz(func(t *testing.T, src string) {
		y, err := ImportMaster(strings.NewReader(src), "fuzz.example.", "fuzz.zone")
		if err != nil {
			return
		}
		if _, err := Compile("fuzz.example.yaml", y, "fuzz.example.", time.Unix(1700000000, 0), nil); err != nil {
			for _, e := range Errors(err) {
				if e.Line < 1 {
					t.Fatalf("imported YAML gave an error without a position: %v\n%s", e, y)
				}
			}
		}
	})
}
