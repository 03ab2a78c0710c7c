package zones

import (
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// TestIPSECKEYFollowedByRecords: an IPSECKEY record that is not a file's
// last loads (miekg/dns alone refused the next line as "garbage after
// rdata"), with the records after it, and an error further down still
// names its own line, in the import and in an $INCLUDE.
func TestIPSECKEYFollowedByRecords(t *testing.T) {
	const key = "AQNRU3mG7TVTO2BkR47usntb102uFJtugbo6BSGvgqt4AQ=="
	master := `$ORIGIN ip.example.
$TTL 300
@    SOA ns1.example.net. hostmaster.example.net. 1 3600 600 1209600 60
@    NS  ns1.example.net.
a    IPSECKEY 10 1 2 192.0.2.38 ` + key + `
     TXT "a's, after its IPSECKEY ; IPSECKEY in quotes"
b    ipseckey ( 10 0 2 .
        ` + key + ` ) ; a comment
$INCLUDE part.zone
c    A 192.0.2.3
`
	part := "p IPSECKEY 10 3 2 gw.example.net. " + key + "\np A 192.0.2.4\n"
	dir := writeFiles(t, map[string]string{"ip.example.yaml": "import: ip.zone\n", "ip.zone": master, "part.zone": part})
	z, err := LoadFile(filepath.Join(dir, "ip.example.yaml"), nil)
	require.NoError(t, err)
	for name, qt := range map[string]uint16{
		"a.ip.example.": dns.TypeIPSECKEY, "b.ip.example.": dns.TypeIPSECKEY, "p.ip.example.": dns.TypeIPSECKEY,
		"c.ip.example.": dns.TypeA, "p.ip.example.#": dns.TypeA,
	} {
		name = strings.TrimSuffix(name, "#")
		require.Equal(t, Success, z.Lookup(name, qt, false, nil).Result, "%s %s", name, dns.TypeToString[qt])
	}
	txt := z.Lookup("a.ip.example.", dns.TypeTXT, false, nil)
	require.Equal(t, Success, txt.Result, "the line after an IPSECKEY keeps its owner")
	require.Equal(t, []string{"a's, after its IPSECKEY ; IPSECKEY in quotes"}, txt.Answer[0].(*dns.TXT).Txt)
	gw := z.Lookup("p.ip.example.", dns.TypeIPSECKEY, false, nil).Answer[0].(*dns.IPSECKEY)
	require.Equal(t, "gw.example.net.", gw.GatewayHost)

	// A broken record after them: reported at its own line and column.
	bad := strings.Replace(master, "c    A 192.0.2.3", "c    A 192.0.2.999", 1)
	dir = writeFiles(t, map[string]string{"ip.example.yaml": "import: ip.zone\n", "ip.zone": bad, "part.zone": part})
	_, err = LoadFile(filepath.Join(dir, "ip.example.yaml"), nil)
	require.ErrorContains(t, err, "ip.zone:10:")
	dir = writeFiles(t, map[string]string{"ip.example.yaml": "import: ip.zone\n", "ip.zone": master,
		"part.zone": part + "q A 192.0.2.999\n"})
	_, err = LoadFile(filepath.Join(dir, "ip.example.yaml"), nil)
	require.ErrorContains(t, err, "part.zone:3:")
}

// TestBreakReaderLines: the empty line goes after an IPSECKEY record only
// where the record ends (not in quotes or parentheses), reads of any size
// give the same bytes, and lines are numbered back as the file has them.
func TestBreakReaderLines(t *testing.T) {
	in := "a IPSECKEY 1 0 2 . AQ== \\\n" + // a backslash before the line break: it ends the record all the same (miekg/dns)
		"b TXT \"IPSECKEY\nstill quoted\"\n" +
		"c IPSECKEY ( 1 0 2 .\n AQ== )\n" +
		"d A 192.0.2.1\n"
	want := "a IPSECKEY 1 0 2 . AQ== \\\n\n" +
		"b TXT \"IPSECKEY\nstill quoted\"\n" +
		"c IPSECKEY ( 1 0 2 .\n AQ== )\n\n" +
		"d A 192.0.2.1\n"
	for _, size := range []int{1, 3, 7, 4096} {
		b := newBreakReader(strings.NewReader(in))
		var out strings.Builder
		buf := make([]byte, size)
		for {
			n, err := b.Read(buf)
			out.Write(buf[:n])
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
		}
		require.Equal(t, want, out.String(), "reads of %d bytes", size)
		// want's lines 2 and 7 are the added ones.
		require.Equal(t, []int{2, 7}, b.added)
		for out, file := range map[int]int{1: 1, 3: 2, 4: 3, 5: 4, 6: 5, 8: 6} {
			require.Equal(t, file, b.fileLine(out), "line %d as read", out)
		}
	}
}
