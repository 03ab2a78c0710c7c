package zones

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"gopkg.in/yaml.v3"
)

// ImportMaster converts an RFC 1035 master file into zone YAML. Every record
// is kept, unknown types in RFC 3597 form; the serial is written out so the
// YAML serves the same SOA as the master file.
func ImportMaster(r io.Reader, origin, file string) ([]byte, error) {
	origin = dns.CanonicalName(dns.Fqdn(origin))
	zp := dns.NewZoneParser(r, origin, file)
	var rrs []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rr.Header().Name = dns.CanonicalName(rr.Header().Name)
		rrs = append(rrs, rr)
	}
	if err := zp.Err(); err != nil {
		return nil, err
	}
	return masterYAML(rrs, origin, file)
}

// ImportFile converts the master file at path into zone YAML, as
// ImportMaster does, after loading it as a zone importing it is loaded
// (within l: $INCLUDE, $GENERATE, and every check), so that `geodns
// import` refuses what `geodns check` would refuse and reports the same
// warnings.
func (l Limits) ImportFile(path, origin string) ([]byte, []*PosError, error) {
	origin = dns.CanonicalName(dns.Fqdn(origin))
	s := &spec{file: path, origin: origin, ttl: DefaultTTL, importFile: filepath.Base(path), names: map[string]*yaml.Node{}}
	c := &compiler{spec: s, limits: l}
	z := c.build(nil, time.Now(), nil)
	if err := c.errs.err(); err != nil {
		return nil, nil, err
	}
	out, err := masterYAML(z.masterRecords(), origin, path)
	return out, c.warns.sorted(), err
}

// masterYAML writes the records of a master file (origin canonical) as
// zone YAML.
func masterYAML(rrs []dns.RR, origin, file string) ([]byte, error) {
	var soa *dns.SOA
	ttls := map[uint32]int{}
	type key struct {
		name  string
		rtype uint16
	}
	sets := map[key][]dns.RR{}
	var order []key
	for _, rr := range rrs {
		h := rr.Header()
		if !dns.IsSubDomain(origin, h.Name) {
			return nil, fmt.Errorf("%s: %s is outside the zone %s", file, h.Name, origin)
		}
		if s, ok := rr.(*dns.SOA); ok {
			if soa != nil {
				return nil, fmt.Errorf("%s: more than one SOA", file)
			}
			soa = s
			continue
		}
		ttls[h.Ttl]++
		k := key{h.Name, h.Rrtype}
		if _, ok := sets[k]; !ok {
			order = append(order, k)
		}
		sets[k] = append(sets[k], rr)
	}
	if soa == nil {
		return nil, fmt.Errorf("%s: no SOA record", file)
	}
	zoneTTL := uint32(DefaultTTL)
	best := 0
	for t, n := range ttls {
		if n > best || (n == best && t < zoneTTL) {
			zoneTTL, best = t, n
		}
	}
	// Each name's canonical sort key made once, not split again at every
	// comparison (that was 900 MB of garbage for 100,000 names).
	sortKeys := make(map[string]string, len(order))
	for _, k := range order {
		if _, ok := sortKeys[k.name]; !ok {
			sortKeys[k.name] = canonicalKey(k.name)
		}
	}
	slices.SortStableFunc(order, func(a, b key) int {
		if c := strings.Compare(sortKeys[a.name], sortKeys[b.name]); c != 0 {
			return c
		}
		return int(a.rtype) - int(b.rtype)
	})

	str := func(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: s} }
	num := func(n uint32) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatUint(uint64(n), 10)}
	}
	mapping := func(kv ...*yaml.Node) *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Content: kv} }
	flow := func(n *yaml.Node) *yaml.Node { n.Style = yaml.FlowStyle; return n }

	soaMap := flow(mapping(
		str("ns"), str(soa.Ns), str("mbox"), str(soa.Mbox), str("serial"), num(soa.Serial),
		str("refresh"), num(soa.Refresh), str("retry"), num(soa.Retry),
		str("expire"), num(soa.Expire), str("minttl"), num(soa.Minttl)))
	if soa.Hdr.Ttl != zoneTTL {
		soaMap.Content = append(soaMap.Content, str("ttl"), num(soa.Hdr.Ttl))
	}
	// The records mapping is written a name at a time, indented under its
	// key: the YAML encoder keeps every event of a document until its end
	// (a 100,000-record zone took 870 MB to import).
	var records bytes.Buffer
	var err error
	var cur *yaml.Node
	var curName string
	var curSets [][]dns.RR
	flush := func() {
		if cur == nil {
			return
		}
		// One TTL for the whole name goes on the name; otherwise per type.
		nameTTL, same := curSets[0][0].Header().Ttl, true
		for _, s := range curSets {
			same = same && s[0].Header().Ttl == nameTTL
		}
		if same && nameTTL != zoneTTL {
			cur.Content = append(cur.Content, str("ttl"), num(nameTTL))
		}
		for _, s := range curSets {
			vals := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
			for _, rr := range s {
				vals.Content = append(vals.Content, str(rdata(rr)))
			}
			var v *yaml.Node = vals
			if t := s[0].Header().Ttl; !same && t != zoneTTL {
				v = flow(mapping(str("ttl"), num(t), str("values"), vals))
			}
			cur.Content = append(cur.Content, str(typeName(s[0].Header().Rrtype)), v)
		}
		if err == nil {
			err = encodeYAML(&records, mapping(str(relName(curName, origin)), cur), "  ")
		}
	}
	for _, k := range order {
		if cur == nil || k.name != curName {
			flush()
			cur, curName, curSets = mapping(), k.name, nil
		}
		curSets = append(curSets, sets[k])
	}
	flush()
	doc := mapping(str("origin"), str(origin), str("ttl"), num(zoneTTL), str("soa"), soaMap)
	var b bytes.Buffer
	fmt.Fprintf(&b, "# imported from %s\n", file)
	if err == nil {
		err = encodeYAML(&b, doc, "")
	}
	if err != nil {
		return nil, err
	}
	if records.Len() > 0 {
		b.WriteString("records:\n")
		b.Write(records.Bytes())
	}
	return b.Bytes(), nil
}

// encodeYAML writes n as YAML (indent 2) to b, each line after indent.
func encodeYAML(b *bytes.Buffer, n *yaml.Node, indent string) error {
	var one bytes.Buffer
	enc := yaml.NewEncoder(&one)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	for line := range strings.Lines(one.String()) {
		b.WriteString(indent)
		b.WriteString(line)
	}
	return nil
}

// canonicalKey is a key whose byte order is the canonical order of names
// (RFC 4034 6.1: by labels from the root, so a zone reads top-down): the
// lowercased labels from the root, each ended by a zero byte (which no
// label's text has: they escape it).
func canonicalKey(name string) string {
	labels := dns.SplitDomainName(name)
	var k strings.Builder
	for i := len(labels) - 1; i >= 0; i-- {
		k.WriteString(strings.ToLower(labels[i]))
		k.WriteByte(0)
	}
	return k.String()
}

// rdata is a record's data in presentation format, without the header.
func rdata(rr dns.RR) string {
	if u, ok := rr.(*dns.RFC3597); ok {
		return fmt.Sprintf(`\# %d %s`, len(u.Rdata)/2, u.Rdata)
	}
	return strings.TrimSpace(strings.TrimPrefix(rr.String(), rr.Header().String()))
}

func typeName(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return "TYPE" + strconv.Itoa(int(t))
}
