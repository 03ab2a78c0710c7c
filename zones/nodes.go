package zones

import (
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// maxExtra caps the additional records kept for one set: more than any
// response carries (they go first when a response is too big).
const maxExtra = 256

// link points each name at its wildcard child and gathers, for NS, MX and
// SRV sets, the in-zone addresses of their targets, so lookups do not
// search for them.
func (c *compiler) link() {
	z := c.z
	for _, n := range c.wilds {
		parent := n.name[2:]
		if parent == "" {
			parent = "."
		}
		z.nodes[parent].wild = n
	}
	for _, ref := range c.targets {
		n := ref.n
		if i := slices.IndexFunc(n.sets, func(s rrset) bool { return s.rtype == ref.rtype }); i >= 0 {
			s := &n.sets[i]
			var seen map[string]bool // made at the first target: most sets have none
			for _, rr := range s.records() {
				target := nameTarget(rr)
				if target == "" {
					continue
				}
				// Each target once: many records naming one host with many
				// addresses must not multiply into millions of extras.
				target = CanonicalName(target)
				if seen[target] || len(s.extra()) >= maxExtra {
					continue
				}
				if seen == nil {
					seen = map[string]bool{}
				}
				seen[target] = true
				if t := z.nodes[target]; t != nil {
					s.all = append(s.all, t.get(dns.TypeA)...)
					s.all = append(s.all, t.get(dns.TypeAAAA)...)
				} else {
					s.all = append(s.all, z.wildAddrs(target)...)
				}
			}
			if end := int(s.n) + maxExtra; len(s.all) > end {
				s.all = s.all[:end:end]
			}
		}
	}
}

// wildAddrs returns the addresses a wildcard gives name, which does not
// exist (RFC 4592: the closest encloser's wildcard), owned by name: glue
// and additional data for a target that exists only through a wildcard,
// as NSD and Knot give. None where the encloser is a cut or a DNAME, which
// no wildcard answers below.
func (z *Zone) wildAddrs(name string) []dns.RR {
	if !dns.IsSubDomain(z.Origin, name) {
		return nil
	}
	n, stop, ce := z.find(name, dns.TypeA) // the lookup's own walk: its closest encloser, and cuts and DNAMEs
	if n != nil || stop != nil || ce.wild == nil {
		return nil
	}
	var out []dns.RR
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		for _, rr := range ce.wild.get(t) {
			rr = dns.Copy(rr)
			rr.Header().Name = name
			out = append(out, rr)
		}
	}
	return out
}

// finishNodes dedupes and orders each node's sets once all are added.
func (c *compiler) finishNodes() {
	z := c.z
	counts := c.shares(func(nodes []*node) (count [2]uint64) {
		for _, n := range nodes {
			for i := range n.sets {
				s := &n.sets[i]
				s.all = dedupe(s.all)
				s.n = uint32(len(s.all))
				count[0] += uint64(s.n)
			}
			slices.SortFunc(n.sets, func(a, b rrset) int { return int(a.rtype) - int(b.rtype) })
			n.cut = n.name != z.Origin && n.get(dns.TypeNS) != nil
			// RFC 6672 2.3: a DNAME beside NS below the apex is occluded
			// by the delegation and MUST be ignored (check warns of it).
			n.dname = !n.cut && n.get(dns.TypeDNAME) != nil
		}
		return count
	})
	z.count = int(counts[0])
}

// node returns the node for name, creating it and its empty ancestors.
func (c *compiler) node(name string) *node {
	z := c.z
	n, ok := z.nodes[name]
	if ok {
		return n
	}
	n = c.newNode(name)
	for p := name; p != z.Origin; {
		off, end := dns.NextLabel(p, 0)
		if end {
			break
		}
		p = p[off:]
		if _, ok := z.nodes[p]; ok {
			break
		}
		c.newNode(p)
	}
	return n
}

func (c *compiler) newNode(name string) *node {
	n := &node{name: name}
	c.z.nodes[name] = n
	if name == c.z.Origin {
		c.z.apex = n
	}
	c.all = append(c.all, n)
	if strings.HasPrefix(name, "*.") {
		c.wilds = append(c.wilds, n)
	}
	return n
}
