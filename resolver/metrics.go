package resolver

import (
	"sync"

	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts queries and service answers. Labels are bounded: zones we
// serve, a fixed set of query types, rcodes, services and sites.
type Metrics struct {
	queries *prometheus.CounterVec
	answers *prometheus.CounterVec
	panics  prometheus.Counter

	dnstapDropped prometheus.Counter

	queryLogLines, queryLogDropped, queryLogLimited prometheus.Counter

	pruneMu sync.Mutex
	origins map[string]bool    // the zones of the last set Prune saw
	pairs   map[[2]string]bool // its services' sites (and all-down)
}

// NewMetrics registers the resolver metrics with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "geodns_queries_total",
			Help: `DNS queries answered, by zone ("-": none of ours), query type and rcode.`,
		}, []string{"zone", "qtype", "rcode"}),
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "geodns_answers_total",
			Help: `Service answers, by service and the site that answered ("all-down": the all_down policy).`,
		}, []string{"service", "site"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "geodns_panics_total",
			Help: "Queries whose handling panicked; each was answered SERVFAIL.",
		}),
		dnstapDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "geodns_dnstap_dropped_total",
			Help: "Queries whose dnstap messages were dropped: the queue to the dnstap writer was full (reader slow or gone).",
		}),
		queryLogLines: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "geodns_query_log_lines_total",
			Help: "Lines written to the sampled JSON query log.",
		}),
		queryLogDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "geodns_query_log_dropped_total",
			Help: "Sampled queries not logged because the queue to the query log's writer was full (destination slow).",
		}),
		queryLogLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "geodns_query_log_limited_total",
			Help: "Sampled queries not logged because the second's max_per_second was reached.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.queries, m.answers, m.panics, m.dnstapDropped, m.queryLogLines, m.queryLogDropped, m.queryLogLimited)
	}
	return m
}

// qtypeLabels are the query types counted by name; the rest are "other",
// so a client cannot make up label values.
var qtypeLabels = func() map[uint16]string {
	m := map[uint16]string{}
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeNS, dns.TypeSOA, dns.TypeMX, dns.TypeTXT,
		dns.TypeCNAME, dns.TypeSRV, dns.TypeCAA, dns.TypePTR, dns.TypeNAPTR, dns.TypeDS, dns.TypeDNSKEY,
		dns.TypeHTTPS, dns.TypeSVCB, dns.TypeTLSA, dns.TypeSSHFP, dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR} {
		m[t] = dns.TypeToString[t]
	}
	return m
}()

// counter returns the query counter of zone, qtype and rcode; the fast
// path keeps it with a cached response rather than find it per query.
func (m *Metrics) counter(zone string, qtype uint16, rcode int) prometheus.Counter {
	t, ok := qtypeLabels[qtype]
	if !ok {
		t = "other"
	}
	if zone == "" {
		zone = "-"
	}
	return m.queries.WithLabelValues(zone, t, RcodeName(rcode))
}

// RcodeName names an rcode. 16 is BADVERS (RFC 6891) here: miekg/dns
// names it BADSIG, its TSIG meaning, and geodns does not do TSIG.
func RcodeName(rcode int) string {
	if rcode == dns.RcodeBadVers {
		return "BADVERS"
	}
	return dns.RcodeToString[rcode]
}

func (m *Metrics) answer(service, site string) {
	if m != nil {
		m.answers.WithLabelValues(service, site).Inc()
	}
}

// Prune deletes the series of what set no longer has: a removed zone's
// queries, a removed or renamed service's or site's answers. Without it
// they stayed until a restart, more with every churn of names. Call it
// with each new set.
func (m *Metrics) Prune(set *zones.Set) {
	if m == nil {
		return
	}
	origins := map[string]bool{}
	pairs := map[[2]string]bool{} // service, site (or "all-down")
	services := map[string]bool{}
	for _, z := range set.Zones() {
		origins[z.Origin] = true
		for _, svc := range z.Services {
			services[svc.Name] = true
			pairs[[2]string{svc.Name, "all-down"}] = true
			for _, site := range svc.Sites {
				pairs[[2]string{svc.Name, site.Name}] = true
			}
		}
	}
	m.pruneMu.Lock()
	defer m.pruneMu.Unlock()
	for o := range m.origins {
		if !origins[o] {
			m.queries.DeletePartialMatch(prometheus.Labels{"zone": o})
		}
	}
	for p := range m.pairs {
		switch {
		case !services[p[0]]:
			m.answers.DeletePartialMatch(prometheus.Labels{"service": p[0]})
		case !pairs[p]:
			m.answers.DeleteLabelValues(p[0], p[1])
		}
	}
	m.origins, m.pairs = origins, pairs
}

// DnstapDropped is the counter of queries whose dnstap messages were dropped.
func (m *Metrics) DnstapDropped() prometheus.Counter { return m.dnstapDropped }
