package zones

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"gopkg.in/yaml.v3"
)

// DNSSEC is a zone's dnssec: key (docs/dnssec.md): the zone is signed.
// Zero fields take the signer's defaults.
type DNSSEC struct {
	Algorithm   string           // ECDSAP256SHA256 (default) or ED25519
	Split       bool             // a KSK and a ZSK instead of one CSK
	CSKLifetime time.Duration    // csk_lifetime; negative: never rolled
	KSKLifetime time.Duration    // ksk_lifetime
	ZSKLifetime time.Duration    // zsk_lifetime
	DNSKEYTTL   uint32           // dnskey_ttl
	Propagation time.Duration    // propagation: Dprp of RFC 7583
	Validity    time.Duration    // signature_validity
	Refresh     time.Duration    // signature_refresh: re-sign when this much is left
	Parent      []netip.AddrPort // parent: the parent's nameservers, asked for our DS during rollovers
}

// MaxSignatureValidity bounds signature_validity. Signature times are
// 32-bit serial numbers (RFC 4034 3.1.5): an expiration 2^31 s or more
// after the inception reads as before it, and validators reject the
// signature. BIND refuses a sig-validity-interval over 3660 days; so do we,
// which leaves room for the transfer window (dnssec.exportWindow).
const MaxSignatureValidity = 3660 * 24 * time.Hour

// dnssecAlgorithms are the algorithms a zone may name.
var dnssecAlgorithms = []string{"ECDSAP256SHA256", "ED25519"}

func (d *decoder) dnssec(n *yaml.Node) *DNSSEC {
	c := &DNSSEC{Algorithm: "ECDSAP256SHA256"}
	lifetime := func(dst *time.Duration, what string) func(*yaml.Node) {
		return func(v *yaml.Node) {
			if s, ok := d.scalar(v, what); ok && (s == "never" || s == "off") {
				*dst = -1
				return
			}
			if x, ok := d.longDuration(v, what); ok {
				*dst = x
			}
		}
	}
	long := func(dst *time.Duration, what string) func(*yaml.Node) {
		return func(v *yaml.Node) {
			if x, ok := d.longDuration(v, what); ok {
				*dst = x
			}
		}
	}
	d.fields(n, "dnssec", map[string]func(*yaml.Node){
		"algorithm": func(v *yaml.Node) {
			if s, ok := d.scalar(v, "dnssec: algorithm"); ok {
				if a := strings.ToUpper(s); slices.Contains(dnssecAlgorithms, a) {
					c.Algorithm = a
				} else {
					d.errf(v, "dnssec: algorithm: %q is not supported (ECDSAP256SHA256 or ED25519)", s)
				}
			}
		},
		"split": func(v *yaml.Node) {
			if b, ok := d.bool(v, "dnssec: split"); ok {
				c.Split = b
			}
		},
		"csk_lifetime": lifetime(&c.CSKLifetime, "dnssec: csk_lifetime"),
		"ksk_lifetime": lifetime(&c.KSKLifetime, "dnssec: ksk_lifetime"),
		"zsk_lifetime": lifetime(&c.ZSKLifetime, "dnssec: zsk_lifetime"),
		"propagation":  long(&c.Propagation, "dnssec: propagation"),
		"signature_validity": func(v *yaml.Node) {
			long(&c.Validity, "dnssec: signature_validity")(v)
			if c.Validity > MaxSignatureValidity {
				d.errf(v, "dnssec: signature_validity: %s is more than %dd", v.Value, MaxSignatureValidity/(24*time.Hour))
			}
		},
		"signature_refresh": long(&c.Refresh, "dnssec: signature_refresh"),
		"dnskey_ttl": func(v *yaml.Node) {
			if t, ok := d.ttl(v, "dnssec: dnskey_ttl"); ok {
				c.DNSKEYTTL = t
			}
		},
		"parent": func(v *yaml.Node) {
			for _, a := range d.list(v, "dnssec: parent") {
				ap, err := netip.ParseAddrPort(a.Value)
				if err != nil {
					if ip, err2 := netip.ParseAddr(a.Value); err2 == nil {
						ap, err = netip.AddrPortFrom(ip, 53), nil
					}
				}
				if err != nil {
					d.errf(a, "dnssec: parent: %q is not an address or address:port", a.Value)
					continue
				}
				c.Parent = append(c.Parent, ap)
			}
		},
	})
	if c.Validity > 0 && c.Refresh >= c.Validity {
		d.errf(n, "dnssec: signature_refresh (%v) must be less than signature_validity (%v)", c.Refresh, c.Validity)
	}
	return c
}

// longDuration decodes a duration that may be given in days ("90d") as
// well as Go's units; it must be positive.
func (d *decoder) longDuration(n *yaml.Node, what string) (time.Duration, bool) {
	s, ok := d.scalar(n, what)
	if !ok {
		return 0, false
	}
	var v time.Duration
	var err error
	if days, isDays := strings.CutSuffix(s, "d"); isDays {
		var x int64
		x, err = strconv.ParseInt(days, 10, 32)
		v = time.Duration(x) * 24 * time.Hour
	} else {
		v, err = time.ParseDuration(s)
	}
	if err != nil || v <= 0 {
		d.errf(n, "%s: %q is not a positive duration (like 90d, 12h or 500ms)", what, s)
		return 0, false
	}
	return v, true
}

// NegativeTTL is the TTL of the zone's negative answers: min(SOA TTL, SOA
// minimum), as the SOA in their authority section has.
func (z *Zone) NegativeTTL() uint32 { return z.negSOA[0].Header().Ttl }

// MaxTTL returns the largest TTL of the zone's records and services.
func (z *Zone) MaxTTL() uint32 {
	var m uint32
	for _, n := range z.nodes {
		for i := range n.sets {
			for _, rr := range n.sets[i].records() {
				m = max(m, rr.Header().Ttl)
			}
		}
		if n.service != nil {
			m = max(m, n.service.TTL)
		}
	}
	return m
}

// NameTypes returns the types name (canonical, in the zone) answers with,
// for the type bitmap of a denial: the types of its records, A and AAAA
// for a service name (CNAME for a CNAME service), a wildcard's types for
// a name it synthesizes, NS (and DS) at a delegation point; nil for an
// empty non-terminal or a name that does not exist.
func (z *Zone) NameTypes(name string) []uint16 {
	n, stop, ce := z.find(name, dns.TypeDS)
	if n == nil && stop == nil && ce != nil && ce.wild != nil {
		n = ce.wild
	}
	if n == nil {
		if stop != nil && stop.name == name {
			n = stop
		} else {
			return nil
		}
	}
	types := make([]uint16, 0, len(n.sets)+2)
	for i := range n.sets {
		types = append(types, n.sets[i].rtype)
	}
	if s := n.service; s != nil {
		if s.CNAME {
			types = append(types, dns.TypeCNAME)
		} else {
			types = append(types, dns.TypeA, dns.TypeAAAA)
		}
	}
	if n.cut {
		// Only what the parent side holds: NS and DS (RFC 4035 2.3).
		types = slices.DeleteFunc(types, func(t uint16) bool { return t != dns.TypeNS && t != dns.TypeDS })
	}
	return types
}
