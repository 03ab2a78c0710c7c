package zones

import (
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// wireZones are zones with cuts, glue below them, DNAMEs (at the apex
// too), wildcards, empty non-terminals, names with escaped octets and
// service owners (made after the records' nodes).
func wireZones(t *testing.T) []*Zone {
	files, err := filepath.Glob("testdata/good/*.yaml")
	require.NoError(t, err)
	more, err := filepath.Glob("../examples/*/zones/*.yaml")
	require.NoError(t, err)
	var zs []*Zone
	for _, f := range append(files, more...) {
		z, err := LoadFile(f, nil)
		require.NoError(t, err, f)
		zs = append(zs, z)
	}
	apexDNAME, err := Compile("apexdname.test.yaml", []byte(`ttl: 300
soa: {ns: ns1.dname.test., mbox: hostmaster.dname.test., serial: 1, minttl: 60}
records:
  "@": {NS: [ns1.dname.test.], DNAME: [dname.test.]}
`), "apexdname.test.", time.Unix(1700000000, 0), nil)
	require.NoError(t, err)
	return append(zs, escapeZone(t), dnameZone(t), apexDNAME)
}

// TestAbsentWireAgreesWithAbsent: the wire index decides absence and the
// closest encloser as the text lookup does, for every name of the zones
// and names one and two labels below each.
func TestAbsentWireAgreesWithAbsent(t *testing.T) {
	services := 0
	for _, z := range wireZones(t) {
		var names []string
		for name, n := range z.nodes {
			if n.service != nil {
				services++
			}
			for _, prefix := range []string{"", "x.", "x.y.", "*.", "geodns-absent-3c9f1e."} {
				names = append(names, prefix+name)
			}
		}
		sort.Strings(names)
		absent := 0
		for _, name := range names {
			if !dns.IsSubDomain(z.Origin, name) || nameWireLen(name) > 255 {
				continue
			}
			wire := appendWire(nil, name)
			enc, ok := z.Absent(name, dns.TypeA)
			want := nameWireLen(enc)
			got, gotHash, gotOK := z.AbsentWire(wire, WireHash(wire))
			require.Equal(t, ok, gotOK, "%s in %s", name, z.Origin)
			if ok {
				absent++
				require.Equal(t, want, got, "%s in %s: encloser %s", name, z.Origin, enc)
				require.Equal(t, enc, NameFromWire(wire[len(wire)-got:]))
				require.Equal(t, WireHash(wire[len(wire)-got:]), gotHash, "%s: the encloser's hash", name)
			}
		}
		if !z.apex.dname { // below a DNAME at the apex, nothing is absent
			require.NotZero(t, absent, z.Origin)
		}
	}
	require.NotZero(t, services, "some zone has service owners")
}

// TestSetFindWire: FindWire finds the zone Find does, DS questions at an
// apex and the root zone included.
func TestSetFindWire(t *testing.T) {
	s := NewSet(apexOnly(t, "example.com."), apexOnly(t, "sub.example.com."), apexOnly(t, "a\\.b.example.net."))
	names := []string{".", "com.", "example.com.", "sub.example.com.", "a.sub.example.com.", "www.example.com.",
		"example.org.", "x.y.example.org.", "a\\.b.example.net.", "c.a\\.b.example.net.", "b.example.net.", "c.a.b.example.net."}
	for _, set := range []*Set{s, s.With(apexOnly(t, ".")), s.Without("example.com."), s.With(apexOnly(t, "example.org."))} {
		for _, name := range names {
			for _, qtype := range []uint16{dns.TypeA, dns.TypeDS, dns.TypeSOA} {
				require.Same(t, set.Find(name, qtype), set.FindWire(appendWire(nil, name), qtype), "%s %s", name, dns.TypeToString[qtype])
			}
		}
	}
	require.Equal(t, "example.com.", s.FindWire(appendWire(nil, "sub.example.com."), dns.TypeDS).Origin, "DS comes from the parent")
	require.Equal(t, "a\\.b.example.net.", s.FindWire(appendWire(nil, "c.a\\.b.example.net."), dns.TypeA).Origin)
	require.Nil(t, s.FindWire(appendWire(nil, "c.a.b.example.net."), dns.TypeA))
}

// TestWireIndex: a hash whose key bits are 0 is kept (0 marks an empty
// slot), equal keys take a slot each, flags come back with the key.
func TestWireIndex(t *testing.T) {
	x := newWireIndex(3)
	x.add(0, wireDNAME)
	x.add(8<<32, wireCut)
	x.add(8<<32|1, 0) // the same key as 8<<32: a slot of its own
	used := 0
	for _, v := range x.slots {
		if v != 0 {
			used++
		}
	}
	require.Equal(t, 3, used)
	flags, ok := x.get(0)
	require.True(t, ok)
	require.Equal(t, uint32(wireDNAME), flags)
	flags, ok = x.get(8 << 32)
	require.True(t, ok)
	require.Equal(t, uint32(wireCut), flags, "the first added is found first")
	_, ok = x.get(16 << 32)
	require.False(t, ok)
}
