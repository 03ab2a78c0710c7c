package zones

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
	"gopkg.in/yaml.v3"
)

// DefaultTTL is the record TTL when a zone file sets none.
const DefaultTTL = 3600

// spec is a zone file decoded but not yet compiled: records are still text
// with the position they came from.
type spec struct {
	file   string
	origin string
	ttl    uint32

	soa        *dns.SOA
	soaNode    *yaml.Node
	serialSet  bool
	importFile string
	importNode *yaml.Node
	transfer   *Transfer
	dnssec     *DNSSEC

	recs     []recSpec
	services []*serviceSpec
	sites    []*Site
	checks   []*Check

	names map[string]*yaml.Node // every record key, for positions of name-level errors
}

type recSpec struct {
	owner string
	rtype string
	value string
	ttl   uint32
	node  *yaml.Node
}

type serviceSpec struct {
	Service
	node     *yaml.Node
	siteRefs []ref // site names used by endpoints and rules
	checkRef []ref
}

type serviceUse struct {
	owner string
	name  string
	node  *yaml.Node
}

type ref struct {
	name string
	node *yaml.Node
}

// decodeSpec decodes one zone file's YAML. origin is the zone's name as given
// by its file name; an origin: key must agree with it.
func decodeSpec(file string, data []byte, origin string) (*spec, []serviceUse, errList) {
	d := &decoder{file: file}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		d.errs = append(d.errs, SyntaxError(file, data, err))
		return nil, nil, d.errs
	}
	s := &spec{file: file, origin: origin, ttl: DefaultTTL, names: map[string]*yaml.Node{}}
	if len(doc.Content) == 0 {
		d.errs.add(file, 1, 1, "empty file")
		return nil, nil, d.errs
	}
	root := doc.Content[0]
	// An alias is a pointer into the tree: a few of them nested make a 33 KB
	// file expand into millions of records. Zones have no use for them.
	if noAliases(d, root); len(d.errs) > 0 {
		return nil, nil, d.errs
	}
	if root.Kind != yaml.MappingNode {
		d.errf(root, "zone: expected a mapping of keys (origin, soa, records, ...), got %s", kindName(root))
		return nil, nil, d.errs
	}
	// The origin and default TTL shape everything else, so read them first.
	var recordsNode, servicesNode, sitesNode, checksNode, soaNode *yaml.Node
	d.fields(root, "zone", map[string]func(*yaml.Node){
		"origin": func(v *yaml.Node) {
			if o, ok := d.domain(v, "origin", "."); ok && o != origin {
				d.errf(v, "origin %q does not match the file name (zone %q)", o, origin)
			}
		},
		"ttl": func(v *yaml.Node) {
			if t, ok := d.ttl(v, "ttl"); ok {
				s.ttl = t
			}
		},
		"soa":      func(v *yaml.Node) { soaNode = v },
		"import":   func(v *yaml.Node) { s.importFile, _ = d.scalar(v, "import"); s.importNode = v },
		"records":  func(v *yaml.Node) { recordsNode = v },
		"services": func(v *yaml.Node) { servicesNode = v },
		"sites":    func(v *yaml.Node) { sitesNode = v },
		"checks":   func(v *yaml.Node) { checksNode = v },
		"transfer": func(v *yaml.Node) { s.transfer = d.transfer(v) },
		"dnssec":   func(v *yaml.Node) { s.dnssec = d.dnssec(v) },
	})
	if soaNode != nil {
		d.soa(s, soaNode)
	}
	var uses []serviceUse
	if recordsNode != nil {
		uses = d.records(s, recordsNode)
	}
	if sitesNode != nil {
		d.sites(s, sitesNode)
	}
	if checksNode != nil {
		d.checks(s, checksNode)
	}
	if servicesNode != nil {
		d.services(s, servicesNode)
	}
	return s, uses, d.errs
}

func (d *decoder) soa(s *spec, n *yaml.Node) {
	soa := &dns.SOA{
		Hdr:     dns.RR_Header{Name: s.origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET},
		Refresh: 3600, Retry: 600, Expire: 1209600, Minttl: 60,
	}
	ttlSet := false
	u32 := func(dst *uint32, what string) func(*yaml.Node) {
		return func(v *yaml.Node) {
			if t, ok := d.int(v, what, 0, 1<<32-1); ok {
				*dst = uint32(t)
			}
		}
	}
	d.fields(n, "soa", map[string]func(*yaml.Node){
		"ns":      func(v *yaml.Node) { soa.Ns, _ = d.domain(v, "soa ns", s.origin) },
		"mbox":    func(v *yaml.Node) { soa.Mbox, _ = d.domain(v, "soa mbox", s.origin) },
		"serial":  func(v *yaml.Node) { u32(&soa.Serial, "soa serial")(v); s.serialSet = true },
		"refresh": u32(&soa.Refresh, "soa refresh"),
		"retry":   u32(&soa.Retry, "soa retry"),
		"expire":  u32(&soa.Expire, "soa expire"),
		"minttl":  u32(&soa.Minttl, "soa minttl"),
		"ttl": func(v *yaml.Node) {
			if t, ok := d.ttl(v, "soa ttl"); ok {
				soa.Hdr.Ttl, ttlSet = t, true
			}
		},
	})
	if soa.Ns == "" {
		d.errf(n, "soa: missing ns")
	}
	if soa.Mbox == "" {
		d.errf(n, "soa: missing mbox")
	}
	if !ttlSet {
		soa.Hdr.Ttl = s.ttl
	}
	s.soa, s.soaNode = soa, n
}

// records decodes the records: mapping. Each name maps record types to one
// value or a list, optionally with its own ttl, or names a service.
func (d *decoder) records(s *spec, n *yaml.Node) []serviceUse {
	var uses []serviceUse
	d.entries(n, "records", func(k, v *yaml.Node) {
		owner, err := absName(k.Value, s.origin)
		if err != nil {
			d.errf(k, "records: %v", err)
			return
		}
		what := fmt.Sprintf("name %q", k.Value)
		if !dns.IsSubDomain(s.origin, owner) {
			d.errf(k, "%s: %s is outside the zone %s", what, owner, s.origin)
			return
		}
		if prev, dup := s.names[owner]; dup {
			d.errf(k, "%s: same name as the key at line %d", what, prev.Line)
			return
		}
		s.names[owner] = k
		nameTTL := s.ttl
		if t := mapValue(v, "ttl"); t != nil {
			if x, ok := d.ttl(t, what+": ttl"); ok {
				nameTTL = x
			}
		}
		d.entries(v, what, func(tk, tv *yaml.Node) {
			switch tk.Value {
			case "ttl":
				return
			case "service":
				if name, ok := d.scalar(tv, what+": service"); ok {
					uses = append(uses, serviceUse{owner: owner, name: name, node: tv})
				}
				return
			}
			rtype := strings.ToUpper(tk.Value)
			if _, ok := dns.StringToType[rtype]; !ok && !strings.HasPrefix(rtype, "TYPE") {
				d.errf(tk, "%s: unknown record type %q", what, tk.Value)
				return
			}
			if rtype == "SOA" {
				d.errf(tk, "%s: the SOA record is set with the top-level soa: key", what)
				return
			}
			ttl, values := nameTTL, tv
			if tv.Kind == yaml.MappingNode {
				values = nil
				d.fields(tv, what+" "+rtype, map[string]func(*yaml.Node){
					"ttl": func(x *yaml.Node) {
						if t, ok := d.ttl(x, what+" "+rtype+": ttl"); ok {
							ttl = t
						}
					},
					"values": func(x *yaml.Node) { values = x },
				})
				if values == nil {
					d.errf(tv, "%s %s: missing values", what, rtype)
					return
				}
			}
			for _, val := range d.list(values, what+" "+rtype) {
				s.recs = append(s.recs, recSpec{owner: owner, rtype: rtype, value: val.Value, ttl: ttl, node: val})
			}
		})
	})
	return uses
}

func (d *decoder) sites(s *spec, n *yaml.Node) {
	d.entries(n, "sites", func(k, v *yaml.Node) {
		site := &Site{Name: k.Value, Capacity: 1}
		what := fmt.Sprintf("site %q", k.Value)
		var haveLat, haveLon bool // given, valid or not: a bad value is reported once
		d.fields(v, what, map[string]func(*yaml.Node){
			"lat": func(x *yaml.Node) { site.Lat, _ = d.float(x, what+": lat", -90, 90); haveLat = true },
			"lon": func(x *yaml.Node) { site.Lon, _ = d.float(x, what+": lon", -180, 180); haveLon = true },
			"capacity": func(x *yaml.Node) {
				if c, ok := d.float(x, what+": capacity", 0, 1e9); ok {
					site.Capacity = c
				}
			},
		})
		if !haveLat || !haveLon {
			d.errf(k, "%s: lat and lon are required", what)
		}
		s.sites = append(s.sites, site)
	})
}

// requestToken reports whether s holds only printable ASCII without
// spaces: what a request target or a Host header may be written with.
func requestToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func (d *decoder) checks(s *spec, n *yaml.Node) {
	d.entries(n, "checks", func(k, v *yaml.Node) {
		c := &Check{Name: k.Value, Interval: DefaultInterval, Timeout: DefaultTimeout, Rise: DefaultRise, Fall: DefaultFall, Up: true, KeepAlive: true}
		what := fmt.Sprintf("check %q", k.Value)
		var rules []*yaml.Node // quorum, min_up, up_ratio: one at most
		count := func(dst *int, key string) func(*yaml.Node) {
			return func(x *yaml.Node) {
				if v, ok := d.int(x, what+": "+key, 1, 100); ok {
					*dst = int(v)
				}
			}
		}
		d.fields(v, what, map[string]func(*yaml.Node){
			"type": func(x *yaml.Node) { c.Type, _ = d.scalar(x, what+": type") },
			"port": func(x *yaml.Node) {
				if p, ok := d.int(x, what+": port", 1, 65535); ok {
					c.Port = int(p)
				}
			},
			// Both go into the probe's request line and headers as they
			// are: a CR, LF or space there would let a zone file write
			// requests of its own to whatever probe_allow lets through.
			"path": func(x *yaml.Node) {
				if c.Path, _ = d.scalar(x, what+": path"); c.Path != "" && (c.Path[0] != '/' || !requestToken(c.Path)) {
					d.errf(x, "%s: path %q: \"/\" then printable ASCII without spaces (percent-encode the rest)", what, c.Path)
				}
			},
			"host": func(x *yaml.Node) {
				if c.Host, _ = d.scalar(x, what+": host"); !requestToken(c.Host) {
					d.errf(x, "%s: host %q: printable ASCII without spaces", what, c.Host)
				}
			},
			"expect_body": func(x *yaml.Node) { c.ExpectBody, _ = d.scalar(x, what+": expect_body") },
			"expect_status": func(x *yaml.Node) {
				for _, sn := range d.list(x, what+": expect_status") {
					if st, ok := d.int(sn, what+": expect_status", 100, 599); ok {
						c.ExpectStatus = append(c.ExpectStatus, int(st))
					}
				}
			},
			"interval": func(x *yaml.Node) {
				if v, ok := d.duration(x, what+": interval"); ok {
					c.Interval = v
				}
			},
			"timeout": func(x *yaml.Node) {
				if v, ok := d.duration(x, what+": timeout"); ok {
					c.Timeout = v
				}
			},
			"rise":      count(&c.Rise, "rise"),
			"fall":      count(&c.Fall, "fall"),
			"insecure":  func(x *yaml.Node) { c.Insecure, _ = d.bool(x, what+": insecure") },
			"up":        func(x *yaml.Node) { c.Up, _ = d.bool(x, what+": up") },
			"keepalive": func(x *yaml.Node) { c.KeepAlive, _ = d.bool(x, what+": keepalive") },
			"quorum": func(x *yaml.Node) {
				if q, _ := d.scalar(x, what+": quorum"); q != "majority" {
					d.errf(x, "%s: quorum %q: only majority is named (or give min_up or up_ratio)", what, q)
				}
				rules = append(rules, x)
			},
			"min_up": func(x *yaml.Node) {
				if v, ok := d.int(x, what+": min_up", 1, 100); ok {
					c.Quorum.MinUp = int(v)
				}
				rules = append(rules, x)
			},
			"up_ratio": func(x *yaml.Node) {
				// An open interval: 0 would be "any vote up", 1 never up.
				if v, ok := d.float(x, what+": up_ratio", 0.01, 0.99); ok {
					c.Quorum.UpRatio = v
				}
				rules = append(rules, x)
			},
			"query": func(x *yaml.Node) { c.Query, _ = d.domain(x, what+": query", s.origin) },
			"qtype": func(x *yaml.Node) {
				t, _ := d.scalar(x, what+": qtype")
				if c.QType = dns.StringToType[strings.ToUpper(t)]; c.QType == 0 {
					d.errf(x, "%s: unknown qtype %q", what, t)
				}
			},
		})
		if c.Type == "dns" {
			if c.Query == "" {
				c.Query = s.origin
			}
			if c.QType == 0 {
				c.QType = dns.TypeSOA
			}
		}
		port, known := checkTypes[c.Type]
		switch {
		case c.Type == "":
			d.errf(k, "%s: missing type (http, https, tcp, dns or static)", what)
		case !known:
			d.errf(v, "%s: unknown type %q (want http, https, tcp, dns or static)", what, c.Type)
		case c.Port == 0 && port != 0:
			c.Port = port
		case c.Port == 0 && c.Type == "tcp":
			d.errf(k, "%s: tcp checks need a port", what)
		}
		if len(c.ExpectStatus) == 0 && (c.Type == "http" || c.Type == "https") {
			c.ExpectStatus = []int{200}
		}
		if c.Path == "" {
			c.Path = "/"
		}
		if c.Timeout > c.Interval {
			d.errf(v, "%s: timeout %v is longer than the interval %v", what, c.Timeout, c.Interval)
		}
		if len(rules) > 1 {
			d.errf(rules[1], "%s: give one of quorum, min_up and up_ratio", what)
		}
		if c.Type == "static" && len(rules) > 0 {
			d.errf(rules[0], "%s: a static check is not probed, so not voted on: no quorum rule", what)
		}
		s.checks = append(s.checks, c)
	})
}

func (d *decoder) services(s *spec, n *yaml.Node) {
	d.entries(n, "services", func(k, v *yaml.Node) {
		svc := &serviceSpec{Service: Service{Name: k.Value, TTL: s.ttl, Answers: 2, SiteUpRatio: 0.5, DegradedTTL: 5,
			MaxLoad: 0.8, ReturnRamp: DefaultReturnRamp}, node: k}
		what := fmt.Sprintf("service %q", k.Value)
		var fallbackNode, exportNode *yaml.Node
		d.fields(v, what, map[string]func(*yaml.Node){
			"ttl": func(x *yaml.Node) {
				if t, ok := d.ttl(x, what+": ttl"); ok {
					svc.TTL = t
				}
			},
			"degraded_ttl": func(x *yaml.Node) {
				if t, ok := d.ttl(x, what+": degraded_ttl"); ok {
					svc.DegradedTTL = t
				}
			},
			"answers": func(x *yaml.Node) {
				if a, ok := d.int(x, what+": answers", 1, 64); ok {
					svc.Answers = int(a)
				}
			},
			"site_up_ratio": func(x *yaml.Node) {
				if r, ok := d.float(x, what+": site_up_ratio", 0, 1); ok {
					svc.SiteUpRatio = r
				}
			},
			"all_down": func(x *yaml.Node) {
				p, _ := d.scalar(x, what+": all_down")
				switch p {
				case "serve-all":
					svc.AllDown = AllDownServeAll
				case "nodata":
					svc.AllDown = AllDownNoData
				case "fallback":
					svc.AllDown = AllDownFallback
				case "":
				default:
					d.errf(x, "%s: all_down %q is not serve-all, nodata or fallback", what, p)
				}
			},
			"fallback": func(x *yaml.Node) {
				fallbackNode = x
				for _, a := range d.list(x, what+": fallback") {
					if ip, ok := d.addr(a, what+": fallback"); ok {
						svc.Fallback = append(svc.Fallback, ip)
					}
				}
			},
			"site_order": func(x *yaml.Node) {
				for _, sn := range d.list(x, what+": site_order") {
					svc.SiteOrder = append(svc.SiteOrder, sn.Value)
					svc.siteRefs = append(svc.siteRefs, ref{sn.Value, sn})
				}
			},
			"export": func(x *yaml.Node) {
				exportNode = x
				if svc.Export, _ = d.scalar(x, what+": export"); svc.Export != "fallback" && svc.Export != "all" {
					svc.siteRefs = append(svc.siteRefs, ref{svc.Export, x})
				}
			},
			"endpoints": func(x *yaml.Node) { d.endpoints(svc, x, what, s.origin) },
			"rules":     func(x *yaml.Node) { d.rules(svc, x, what) },
			"spillover": func(x *yaml.Node) {
				if x.Kind == yaml.ScalarNode && x.Tag != "!!null" {
					svc.Spillover, _ = d.bool(x, what+": spillover") // true: on, with the defaults
					return
				}
				svc.Spillover = true
				d.fields(x, what+": spillover", map[string]func(*yaml.Node){
					"max_load": func(y *yaml.Node) {
						if v, ok := d.float(y, what+": spillover: max_load", 0.01, 10); ok {
							svc.MaxLoad = v
						}
					},
				})
			},
			"return_ramp": func(x *yaml.Node) {
				if x.Value == "0" || x.Value == "0s" {
					svc.ReturnRamp = 0
				} else if v, ok := d.duration(x, what+": return_ramp"); ok {
					svc.ReturnRamp = v
				}
			},
			"dials": func(x *yaml.Node) {
				svc.Dials = map[string]float64{}
				d.entries(x, what+": dials", func(sk, sv *yaml.Node) {
					svc.siteRefs = append(svc.siteRefs, ref{sk.Value, sk})
					if pct, ok := d.float(sv, fmt.Sprintf("%s: dial of %q", what, sk.Value), 0, 100); ok {
						svc.Dials[sk.Value] = pct / 100
					}
				})
			},
		})
		if len(svc.Endpoints) == 0 {
			d.errf(k, "%s: no endpoints", what)
		}
		if svc.AllDown == AllDownFallback && len(svc.Fallback) == 0 {
			d.errf(k, "%s: all_down is fallback but no fallback addresses are given", what)
		}
		if svc.AllDown != AllDownFallback && fallbackNode != nil {
			d.errf(fallbackNode, "%s: fallback addresses are only used with all_down: fallback", what)
		}
		if svc.Export == "fallback" && len(svc.Fallback) == 0 {
			d.errf(exportNode, "%s: export is fallback but no fallback addresses are given", what)
		}
		s.services = append(s.services, svc)
	})
}

// transfer decodes the transfer: key: who may transfer the zone (CIDR
// prefixes, or key:NAME for a TSIG key of the server config) and where
// NOTIFY goes (address:port).
func (d *decoder) transfer(n *yaml.Node) *Transfer {
	t := &Transfer{}
	d.fields(n, "transfer", map[string]func(*yaml.Node){
		"allow": func(x *yaml.Node) {
			for _, a := range d.list(x, "transfer: allow") {
				if name, ok := strings.CutPrefix(a.Value, "key:"); ok {
					if _, ok := dns.IsDomainName(name); !ok || name == "" {
						d.errf(a, "transfer: allow: %q is not a key name", name)
						continue
					}
					t.Keys = append(t.Keys, dns.CanonicalName(name))
					continue
				}
				p, err := netip.ParsePrefix(a.Value)
				if err != nil {
					d.errf(a, "transfer: allow: %q is neither a CIDR prefix nor key:NAME", a.Value)
					continue
				}
				t.Allow = append(t.Allow, p.Masked())
			}
		},
		"notify": func(x *yaml.Node) {
			for _, a := range d.list(x, "transfer: notify") {
				ap, err := netip.ParseAddrPort(a.Value)
				if err != nil {
					if ip, err2 := netip.ParseAddr(a.Value); err2 == nil {
						ap, err = netip.AddrPortFrom(ip, 53), nil
					}
				}
				if err != nil {
					d.errf(a, "transfer: notify: %q is not an address or address:port", a.Value)
					continue
				}
				t.Notify = append(t.Notify, ap)
			}
		},
		"notify_key": func(x *yaml.Node) {
			if name, ok := d.scalar(x, "transfer: notify_key"); ok {
				t.NotifyKey = dns.CanonicalName(name)
			}
		},
	})
	return t
}

func (d *decoder) endpoints(svc *serviceSpec, n *yaml.Node, what, origin string) {
	if n.Kind != yaml.SequenceNode {
		d.errf(n, "%s: endpoints: expected a list, got %s", what, kindName(n))
		return
	}
	seen := map[string]int{} // site and address (or cname): the endpoint's number
	for i, en := range n.Content {
		en = resolveAlias(en)
		ew := fmt.Sprintf("%s endpoint %d", what, i+1)
		var ep Endpoint
		var siteNode, addrNode, cnameNode *yaml.Node
		d.fields(en, ew, map[string]func(*yaml.Node){
			"site":    func(x *yaml.Node) { ep.Site, _ = d.scalar(x, ew+": site"); siteNode = x },
			"address": func(x *yaml.Node) { addrNode = x },
			"cname": func(x *yaml.Node) {
				cnameNode = x
				ep.CNAME, _ = d.domain(x, ew+": cname", origin)
			},
			"check": func(x *yaml.Node) {
				ep.Check, _ = d.scalar(x, ew+": check")
				svc.checkRef = append(svc.checkRef, ref{ep.Check, x})
			},
			"target": func(x *yaml.Node) {
				t, _ := d.scalar(x, ew+": target")
				if _, err := netip.ParseAddrPort(t); err != nil {
					if _, err2 := netip.ParseAddr(t); err2 != nil {
						d.errf(x, "%s: target %q is not an address or address:port", ew, t)
					}
				}
				ep.Target = t
			},
		})
		if siteNode == nil {
			d.errf(en, "%s: missing site", ew)
		} else {
			svc.siteRefs = append(svc.siteRefs, ref{ep.Site, siteNode})
		}
		switch {
		case addrNode != nil && cnameNode != nil:
			d.errf(cnameNode, "%s: give address or cname, not both", ew)
		case addrNode == nil && cnameNode == nil:
			d.errf(en, "%s: missing address (or cname)", ew)
		case addrNode != nil:
			if _, ok := d.scalar(addrNode, ew+": address"); ok {
				if ip, ok := d.addr(addrNode, ew+": address"); ok {
					ep.Address = ip
				}
			}
		}
		if i == 0 {
			svc.CNAME = cnameNode != nil
		} else if svc.CNAME != (cnameNode != nil) {
			d.errf(en, "%s: a service answers either addresses or CNAMEs, not a mix", ew)
		}
		// One address twice in a site would be answered twice (RFC 2181
		// 5: a set holds a record once). In two sites it is allowed: an
		// anycast address checked at each; answers list it once.
		if k := ep.Site + " " + ep.Address.String() + " " + dns.CanonicalName(ep.CNAME); ep.Site != "" && (ep.Address.IsValid() || ep.CNAME != "") {
			if j, dup := seen[k]; dup {
				d.errf(en, "%s: site %s lists %s already (endpoint %d)", ew, ep.Site, endpointText(ep), j)
			} else {
				seen[k] = i + 1
			}
		}
		svc.Endpoints = append(svc.Endpoints, ep)
	}
}

func endpointText(ep Endpoint) string {
	if ep.Address.IsValid() {
		return ep.Address.String()
	}
	return ep.CNAME
}

func (d *decoder) rules(svc *serviceSpec, n *yaml.Node, what string) {
	if n.Kind != yaml.SequenceNode {
		d.errf(n, "%s: rules: expected a list, got %s", what, kindName(n))
		return
	}
	codes := func(x *yaml.Node, rw, key string, size int) []string {
		var out []string
		for _, c := range d.list(x, rw+": "+key) {
			v := strings.ToUpper(c.Value)
			if size > 0 && len(v) != size {
				d.errf(c, "%s: %s %q must have %d letters", rw, key, c.Value, size)
			}
			out = append(out, v)
		}
		return out
	}
	for i, rn := range n.Content {
		rn = resolveAlias(rn)
		rw := fmt.Sprintf("%s rule %d", what, i+1)
		var r Rule
		var matchNode *yaml.Node
		d.fields(rn, rw, map[string]func(*yaml.Node){
			"match": func(x *yaml.Node) {
				matchNode = x
				d.fields(x, rw+" match", map[string]func(*yaml.Node){
					"country":     func(y *yaml.Node) { r.Countries = codes(y, rw, "country", 2) },
					"continent":   func(y *yaml.Node) { r.Continents = codes(y, rw, "continent", 2) },
					"subdivision": func(y *yaml.Node) { r.Subdivisions = codes(y, rw, "subdivision", 0) },
					"cidr": func(y *yaml.Node) {
						for _, c := range d.list(y, rw+": cidr") {
							p, err := netip.ParsePrefix(c.Value)
							if err != nil {
								d.errf(c, "%s: %q is not a CIDR prefix", rw, c.Value)
								continue
							}
							r.CIDRs = append(r.CIDRs, p.Masked())
						}
					},
				})
			},
			"sites": func(x *yaml.Node) {
				for _, sn := range d.list(x, rw+": sites") {
					r.Sites = append(r.Sites, sn.Value)
					svc.siteRefs = append(svc.siteRefs, ref{sn.Value, sn})
				}
			},
			"only": func(x *yaml.Node) { r.Only, _ = d.bool(x, rw+": only") },
		})
		if matchNode == nil {
			d.errf(rn, "%s: missing match", rw)
		}
		if len(r.Sites) == 0 {
			d.errf(rn, "%s: missing sites", rw)
		}
		svc.Rules = append(svc.Rules, r)
	}
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return resolveAlias(n.Content[i+1])
		}
	}
	return nil
}

// noAliases reports the first alias in the tree at n and how many there
// are. The tree as parsed holds each alias once, so this walk is linear in
// the file.
func noAliases(d *decoder, n *yaml.Node) {
	var first *yaml.Node
	count := 0
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.AliasNode {
			if first == nil {
				first = n
			}
			count++
			return
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	if first == nil {
		return
	}
	more := ""
	if count > 1 {
		more = fmt.Sprintf(" (%d aliases in the file)", count)
	}
	d.errf(first, "yaml alias *%s: aliases (and merge keys) are not allowed in zone files; write the value out%s", first.Value, more)
}
