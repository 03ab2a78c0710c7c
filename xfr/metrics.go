package xfr

import (
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// expiryDesc is geodns_transfer_signature_expiry_seconds: read from the
// views at scrape time, so it needs no writer and cannot go stale.
var expiryDesc = prometheus.NewDesc("geodns_transfer_signature_expiry_seconds",
	"Time until the signatures of the signed zone's last transfer expire, in seconds (/86400: days); secondaries serve them until then. Normally more than the SOA's expire: less means the transfer has not been signed again.",
	[]string{"zone"}, nil)

// collector exports the transfer metrics of a Server.
type collector struct{ s *Server }

func (c collector) Describe(ch chan<- *prometheus.Desc) { ch <- expiryDesc }

func (c collector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for origin, v := range *c.s.views.Load() {
		if len(v.soaSigs) == 0 {
			continue
		}
		exp := v.soaSigs[0].(*dns.RRSIG).Expiration
		for _, rr := range v.soaSigs[1:] {
			exp = min(exp, rr.(*dns.RRSIG).Expiration)
		}
		ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue,
			time.Unix(int64(exp), 0).Sub(now).Seconds(), origin)
	}
}
