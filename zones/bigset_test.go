package zones

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// TestLargeRRsetIsLinear: one name with 65,535 records (a $GENERATE),
// half of them duplicates, compiles in about linear time and keeps each
// record once. The duplicate check was quadratic: 8,000 records took 2.9 s.
func TestLargeRRsetIsLinear(t *testing.T) {
	src := "@ 300 IN SOA a. b. 1 2 3 4 5\n@ 300 IN NS ns.\n" +
		"$GENERATE 1-65535 big 300 IN TXT \"r$\"\n" +
		"$GENERATE 1-32000 big 300 IN TXT \"r$\"\n" + // duplicates
		"$GENERATE 1-100 mx 300 IN MX 10 MX$.EXAMPLE.\n$GENERATE 1-100 mx 300 IN MX 10 mx$.example.\n" // duplicates by case only
	y, err := ImportMaster(strings.NewReader(src), "big.example.", "big.zone")
	require.NoError(t, err)
	start := time.Now()
	z, err := Compile("big.example.yaml", y, "big.example.", time.Now(), nil)
	took := time.Since(start)
	require.NoError(t, err)
	require.Less(t, took, 20*time.Second)
	a := z.Lookup("big.big.example.", dns.TypeTXT, false, nil)
	require.Len(t, a.Answer, 65535)
	require.Equal(t, `big.big.example.	300	IN	TXT	"r1"`, a.Answer[0].String(), "order kept")
	require.Len(t, z.Lookup("mx.big.example.", dns.TypeMX, false, nil).Answer, 100, "names compare without case")
	t.Logf("65,535 + 32,000 + 200 records at two names compiled in %v", took.Round(time.Millisecond))
}

// TestAdditionalDataBounded: 3,000 MX records naming one host with 1,000
// addresses built 3,000,000 additional records (every MX query would copy
// them); each target now counts once and a set keeps at most maxExtra.
func TestAdditionalDataBounded(t *testing.T) {
	src := "@ 300 IN SOA a. b. 1 2 3 4 5\n@ 300 IN NS ns.\n$GENERATE 1-3000 @ 300 IN MX $ host\n"
	for i := range 4 {
		src += fmt.Sprintf("$GENERATE 1-250 host 300 IN A 10.0.%d.$\n", i)
	}
	y, err := ImportMaster(strings.NewReader(src), "mx.example.", "mx.zone")
	require.NoError(t, err)
	z, err := Compile("mx.example.yaml", y, "mx.example.", time.Now(), nil)
	require.NoError(t, err)
	a := z.Lookup("mx.example.", dns.TypeMX, false, nil)
	require.Len(t, a.Answer, 3000)
	require.Len(t, a.Extra, maxExtra)
}
