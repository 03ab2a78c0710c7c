package zones

import (
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// Warnings are problems that do not stop a zone loading: the zone loads and
// carries them (Zone.Warnings); the watcher logs them once per load and
// counts them (geodns_zone_warnings), `geodns check` prints them and fails
// on them only with --strict. They follow what BIND's named-checkzone,
// NSD and Knot accept with a warning: occluded data, in-zone MX and SRV
// targets without an address, a relative name that repeats the origin
// (a missing trailing dot), a changed zone whose SOA serial did not move.

// reporters returns at, which reports an error with the records of a name,
// and warn, which reports a warning, each at the name's YAML key or the
// first of its records (for an imported record: its line in the master
// file). Messages are made only when there is one to make (a big zone has
// a million names); both are safe for concurrent use. c.errRR and c.warnRR
// report at one record's own position.
func (c *compiler) reporters(recs []placed) (at, warn func(name, format string, args ...any)) {
	c.rep = &reporter{c: c, recs: recs}
	at = func(name, format string, args ...any) { c.rep.report(&c.errs, name, nil, format, args...) }
	warn = func(name, format string, args ...any) { c.rep.report(&c.warns, name, nil, format, args...) }
	return at, warn
}

func (c *compiler) errRR(rr dns.RR, name, format string, args ...any) {
	c.rep.report(&c.errs, name, rr, format, args...)
}

func (c *compiler) warnRR(rr dns.RR, name, format string, args ...any) {
	c.rep.report(&c.warns, name, rr, format, args...)
}

// reporter places problems; its indexes are built at the first report.
type reporter struct {
	c    *compiler
	recs []placed
	mu   sync.Mutex     // called from every share's goroutine
	name map[string]int // index in recs of the first record of each name
	rec  map[dns.RR]int // index in recs of each record
}

// report adds a problem with name (at rr's own position when rr is given
// and found) to list.
func (r *reporter) report(list *errList, name string, rr dns.RR, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.c
	format, args = "name %q: "+format, append([]any{c.rel(name)}, args...)
	i, ok := -1, false
	if rr != nil {
		if r.rec == nil {
			r.rec = make(map[dns.RR]int, len(r.recs))
			for k, p := range r.recs {
				r.rec[p.rr] = k
			}
		}
		i, ok = r.rec[rr]
	}
	if !ok {
		if k := c.spec.names[name]; k != nil {
			list.add(c.spec.file, k.Line, k.Column, format, args...)
			return
		}
		if r.name == nil {
			r.name = map[string]int{}
			for k, p := range r.recs {
				if _, seen := r.name[p.rr.Header().Name]; !seen {
					r.name[p.rr.Header().Name] = k
				}
			}
		}
		i, ok = r.name[name]
	}
	recs := r.recs
	switch {
	case ok && recs[i].node != nil:
		list.add(c.spec.file, recs[i].node.Line, recs[i].node.Column, format, args...)
	case ok && c.importPath != "":
		if pos := c.importPositions(); i < len(pos) {
			list.add(pos[i].file, pos[i].line, pos[i].col, format, args...)
			return
		}
		fallthrough
	case ok && c.spec.importNode != nil:
		n := c.spec.importNode
		list.add(c.spec.file, n.Line, n.Column, "import %s: "+format, append([]any{c.spec.importFile}, args...)...)
	default: // a whole-file problem, or a record the scan could not place
		list.add(c.spec.file, 1, 1, format, args...)
	}
}

// checkBelow checks a name against the names above it: data below a zone
// cut is occluded (RFC 2181 6: loaded, never served, a warning, as NSD,
// Knot and BIND load it); data below a DNAME is validateNode's error (NSD
// and Knot refuse it). It also warns about a relative name that repeats
// the origin, as an owner or a CNAME, DNAME or PTR target.
func (c *compiler) checkBelow(n *node, at, warn func(name, format string, args ...any)) {
	name := n.name
	if (len(n.sets) > 0 || n.service != nil) && c.doubledOrigin(name) {
		warn(name, "the name became %s: a relative name ending in the zone's origin (a missing trailing dot?)", name)
	}
	for _, s := range n.sets {
		switch s.rtype {
		case dns.TypeCNAME, dns.TypeDNAME, dns.TypePTR:
		default:
			continue
		}
		for _, rr := range s.records() {
			if target := dns.CanonicalName(nameTarget(rr)); c.doubledOrigin(target) {
				c.warnRR(rr, name, "%s target became %s: a relative name ending in the zone's origin (a missing trailing dot?)",
					dns.TypeToString[s.rtype], target)
			}
		}
	}
	for p := name; p != c.z.Origin; {
		off, end := dns.NextLabel(p, 0)
		if end {
			break
		}
		p = p[off:]
		up := c.z.nodes[p]
		if up == nil {
			continue
		}
		if c.dnames > 0 && up.get(dns.TypeDNAME) != nil {
			return // below a DNAME: validateNode's error
		}
		if up.cut {
			if n.service != nil {
				at(name, "service below the delegation at %s", p)
			}
			for _, s := range n.sets {
				if (s.rtype == dns.TypeA || s.rtype == dns.TypeAAAA) && c.isTargetOf(up, name) {
					continue // glue
				}
				c.warnRR(s.all[0], name, "%s record below the delegation at %s is occluded: never served (only glue belongs there)", dns.TypeToString[s.rtype], p)
			}
			return
		}
	}
}

// isTargetOf tells whether the NS set at cut names name.
func (c *compiler) isTargetOf(cut *node, name string) bool {
	for _, rr := range cut.get(dns.TypeNS) {
		if ns, ok := rr.(*dns.NS); ok && dns.CanonicalName(ns.Ns) == name {
			return true
		}
	}
	return false
}

// doubledOrigin tells whether name ends in the origin twice: "ns1.example.org"
// written without its dot inside example.org.
func (c *compiler) doubledOrigin(name string) bool {
	o := c.z.Origin
	if o == "." {
		return false
	}
	doubled := o + o
	return name == doubled || strings.HasSuffix(name, "."+doubled)
}

// checkTargets checks the NS, MX and SRV targets inside the zone, as BIND's
// integrity checks do: an NS target of a master file without an address
// (A or AAAA, given or matched by a wildcard) is an error, since no
// resolver can reach that server (BIND refuses the zone); an MX or SRV
// target without one is a warning. A target that repeats the origin is a
// warning too.
//
// In a YAML zone's own records: a warning. Zones written for geodns
// before this check loaded with such NS records (tests and examples
// among them); an upgrade must not take them off the air, which is the
// harm the check is there to prevent.
func (c *compiler) checkTargets() {
	z := c.z
	yamlNS := map[string]bool{}
	for _, r := range c.spec.recs {
		if r.rtype == "NS" {
			yamlNS[r.owner] = true
		}
	}
	for _, ref := range c.targets {
		n := ref.n
		for _, rr := range n.get(ref.rtype) {
			var target string
			switch x := rr.(type) {
			case *dns.NS:
				target = x.Ns
			case *dns.MX:
				target = x.Mx
			case *dns.SRV:
				target = x.Target
			}
			target = dns.CanonicalName(target)
			if target == "." || !dns.IsSubDomain(z.Origin, target) {
				continue // no service (RFC 7505, RFC 2782), or out of the zone
			}
			what := dns.TypeToString[ref.rtype]
			if c.doubledOrigin(target) {
				c.warnRR(rr, n.name, "%s target became %s: a relative name ending in the zone's origin (a missing trailing dot?)", what, target)
			}
			if c.hasAddress(target) {
				continue
			}
			if ref.rtype == dns.TypeNS && !yamlNS[n.name] {
				c.errRR(rr, n.name, "NS target %s is in the zone but has no address (A or AAAA): no resolver can reach it", target)
			} else if ref.rtype == dns.TypeNS {
				c.warnRR(rr, n.name, "NS target %s is in the zone but has no address (A or AAAA): no resolver can reach it (an error in a master file)", target)
			} else {
				c.warnRR(rr, n.name, "%s target %s is in the zone but has no address (A or AAAA)", what, target)
			}
		}
	}
}

// hasAddress tells whether name, in the zone, has an A or AAAA record
// (its own, a wildcard's, or a service's).
func (c *compiler) hasAddress(name string) bool {
	addr := func(n *node) bool {
		return n != nil && (n.get(dns.TypeA) != nil || n.get(dns.TypeAAAA) != nil || (n.service != nil && !n.service.CNAME))
	}
	if n := c.z.nodes[name]; n != nil {
		return addr(n)
	}
	// The closest encloser's wildcard answers a name that does not exist.
	for p := name; p != c.z.Origin; {
		off, end := dns.NextLabel(p, 0)
		if end {
			return false
		}
		p = p[off:]
		if c.z.nodes[p] != nil {
			return addr(c.z.nodes["*."+p])
		}
	}
	return false
}

// checkSerial warns when the zone's content changed since prev while its
// SOA serial (given by the zone, not automatic) did not. BIND warns
// likewise, but here secondaries do get the change: the transfer server
// moves the exported serial past the file's on its own (xfr.version). So
// the warning says that, rather than that the change is lost.
func (c *compiler) checkSerial(recs []placed, prev *Zone) {
	z := c.z
	if prev == nil || !c.spec.serialSet || prev.Hash == z.Hash || prev.Serial != z.Serial {
		return
	}
	_, warn := c.reporters(recs)
	if z.Transfer != nil {
		warn(z.Origin, "the content changed but the SOA serial (%d) did not: if what is transferred changed, transfers export it under the next serial (SOA answers and NOTIFY say it, IXFR delivers it), ahead of the file's", z.Serial)
		return
	}
	warn(z.Origin, "the content changed but the SOA serial (%d) did not: SOA answers still say %d, so what compares serials cannot tell the versions apart", z.Serial, z.Serial)
}
