package zones

import (
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// Health check defaults (see Check).
const (
	DefaultInterval = time.Second
	DefaultTimeout  = 800 * time.Millisecond
	DefaultRise     = 3
	DefaultFall     = 2
)

// Zone is a compiled, immutable zone snapshot. It is safe for concurrent use;
// the records it returns are shared and must not be mutated.
type Zone struct {
	Origin string // canonical (lower-case, absolute) zone name
	File   string // the YAML file it came from
	Serial uint32
	Hash   [32]byte // digest of the zone's content, for change detection

	Sites    map[string]*Site
	SiteList []*Site // as listed in the file
	Services map[string]*Service
	Checks   map[string]*Check

	// Transfer says who may transfer the zone and whom to NOTIFY; nil:
	// transfers are refused.
	Transfer *Transfer

	// DNSSEC says how the zone is signed; nil: it is not.
	DNSSEC *DNSSEC

	// Imports lists the master files read, so a watcher can reload the zone
	// when one of them changes.
	Imports []string

	// Warnings are the problems found that do not stop the zone loading
	// (occluded data, targets without addresses, ...), in file order.
	Warnings []*PosError

	soa    *dns.SOA
	negSOA []dns.RR // the SOA with the negative-caching TTL, for authority sections
	nodes  map[string]*node
	apex   *node // nodes[Origin], which every lookup starts from: not hashed per query
	count  int

	// For absent names asked in wire form (AbsentWire, Set.FindWire):
	// the origin's wire form, lower case, and every node's name hashed.
	originWire string
	originHash uint64 // WireHash(originWire)
	wire       wireIndex

	pre *presigned // the proofs of a pre-signed zone (presigned.go); nil if it is not one
}

// Transfer is a zone's transfer: key (docs/transfers.md).
type Transfer struct {
	Allow     []netip.Prefix   // clients allowed by address
	Keys      []string         // TSIG key names (canonical) that allow a client whatever its address
	Notify    []netip.AddrPort // secondaries sent NOTIFY on each exported serial change
	NotifyKey string           // TSIG key signing NOTIFY; "": the first of Keys, if any
}

// node is one owner name. Empty non-terminals are nodes without records so
// that they answer NODATA rather than NXDOMAIN (RFC 8020).
type node struct {
	name    string
	sets    []rrset // sorted by type
	service *Service
	wild    *node // the "*" child, the source of synthesis below this name
	cut     bool  // holds an NS set below the apex: a delegation point
	dname   bool  // holds a DNAME: names below it are synthesized (RFC 6672)
}

// rrset is the records of one type at a name. Its records and their
// additional data share one slice: 32 bytes a set rather than 56 (a
// million-record zone has about as many sets).
type rrset struct {
	rtype uint16
	n     uint32   // all[:n] are the records
	all   []dns.RR // the records, then the addresses of in-zone NS/MX/SRV targets (glue and additional data)
}

// records returns the set's records. Its capacity ends with them, so an
// append by a caller copies rather than writing over the extra records.
func (s *rrset) records() []dns.RR { return s.all[:s.n:s.n] }

// extra returns the addresses of the set's in-zone NS/MX/SRV targets.
func (s *rrset) extra() []dns.RR {
	if int(s.n) == len(s.all) {
		return nil
	}
	return s.all[s.n:]
}

func (n *node) get(t uint16) []dns.RR {
	if s := n.set(t); s != nil {
		return s.records()
	}
	return nil
}

func (n *node) set(t uint16) *rrset {
	for i := range n.sets {
		if n.sets[i].rtype == t {
			return &n.sets[i]
		}
	}
	return nil
}

// SOA returns the zone's SOA record.
func (z *Zone) SOA() *dns.SOA { return z.soa }

// Len returns the number of records in the zone.
func (z *Zone) Len() int { return z.count }

// Records calls fn for every record in the zone, names in no particular
// order; a pre-signed zone's NSEC3 records and their signatures too.
func (z *Zone) Records(fn func(dns.RR)) {
	for _, n := range z.nodes {
		for i := range n.sets {
			for _, rr := range n.sets[i].records() {
				fn(rr)
			}
		}
	}
	if z.pre != nil {
		for _, rr := range z.pre.all {
			fn(rr)
		}
	}
}

// ServiceNames returns the owner names routed to services, with their service.
func (z *Zone) ServiceNames() map[string]*Service {
	out := map[string]*Service{}
	for name, n := range z.nodes {
		if n.service != nil {
			out[name] = n.service
		}
	}
	return out
}
