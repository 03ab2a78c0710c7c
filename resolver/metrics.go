package resolver

import (
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
	}
	if reg != nil {
		reg.MustRegister(m.queries, m.answers, m.panics, m.dnstapDropped)
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

// Forget deletes the series of a zone that is no longer served.
func (m *Metrics) Forget(zone string) {
	if m != nil {
		m.queries.DeletePartialMatch(prometheus.Labels{"zone": zone})
	}
}

// DnstapDropped is the counter of queries whose dnstap messages were dropped.
func (m *Metrics) DnstapDropped() prometheus.Counter { return m.dnstapDropped }
