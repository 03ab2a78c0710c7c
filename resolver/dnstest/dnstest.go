// Package dnstest holds helpers for table-driven DNS tests: record builders,
// query cases, an order-insensitive response check and a recording
// dns.ResponseWriter.
package dnstest

import (
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// RR parses one record in presentation format; it panics on bad input, as
// test data is fixed.
func RR(s string) dns.RR {
	rr, err := dns.NewRR(s)
	if err != nil || rr == nil {
		panic(fmt.Sprintf("dnstest.RR(%q): %v", s, err))
	}
	return rr
}

// RRs parses several records.
func RRs(ss ...string) []dns.RR {
	out := make([]dns.RR, len(ss))
	for i, s := range ss {
		out[i] = RR(s)
	}
	return out
}

// Case is one query and the response it must get.
type Case struct {
	Name  string // subtest name
	Qname string
	Qtype uint16
	Class uint16 // default IN
	TCP   bool   // the answer goes back over TCP
	EDNS  uint16 // advertised UDP size; 0 = no OPT
	DO    bool
	Ver   uint8 // EDNS version

	Rcode  int
	AA     bool
	TC     bool
	Answer []dns.RR
	Ns     []dns.RR
	Extra  []dns.RR // compared without the OPT record
}

// Msg returns the query of the case.
func (c Case) Msg() *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(c.Qname, c.Qtype)
	m.RecursionDesired = false
	if c.Class != 0 {
		m.Question[0].Qclass = c.Class
	}
	if c.EDNS > 0 {
		m.SetEdns0(c.EDNS, c.DO)
		m.IsEdns0().SetVersion(c.Ver)
	}
	return m
}

// Check compares resp with what the case expects. Sections are compared as
// sets of records (order does not matter), owner names case-insensitively.
func Check(t *testing.T, c Case, resp *dns.Msg) {
	t.Helper()
	if resp == nil {
		t.Fatal("no response")
	}
	if resp.Rcode != c.Rcode {
		t.Errorf("rcode %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[c.Rcode])
	}
	if resp.Authoritative != c.AA {
		t.Errorf("AA %v, want %v", resp.Authoritative, c.AA)
	}
	if resp.Truncated != c.TC {
		t.Errorf("TC %v, want %v", resp.Truncated, c.TC)
	}
	if !resp.Response {
		t.Error("QR not set")
	}
	if len(resp.Question) != 1 || resp.Question[0].Name != c.Qname {
		t.Errorf("question %v, want %s echoed as asked", resp.Question, c.Qname)
	}
	section(t, "answer", resp.Answer, c.Answer)
	section(t, "authority", resp.Ns, c.Ns)
	section(t, "additional", resp.Extra, c.Extra)
}

func section(t *testing.T, name string, got, want []dns.RR) {
	t.Helper()
	g, w := Strings(got), Strings(want)
	if !slices.Equal(g, w) {
		t.Errorf("%s section:\ngot:\n  %s\nwant:\n  %s", name, strings.Join(g, "\n  "), strings.Join(w, "\n  "))
	}
}

// Strings renders records sorted, owners lower-cased, OPT left out.
func Strings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		c := dns.Copy(rr)
		c.Header().Name = strings.ToLower(c.Header().Name)
		out = append(out, c.String())
	}
	sort.Strings(out)
	return out
}

// Recorder is a dns.ResponseWriter that keeps the message written.
type Recorder struct {
	Remote net.Addr // default 127.0.0.1:53000 over UDP
	Msg    *dns.Msg
	Writes int
}

func (r *Recorder) LocalAddr() net.Addr { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }

func (r *Recorder) RemoteAddr() net.Addr {
	if r.Remote == nil {
		return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53000}
	}
	return r.Remote
}

func (r *Recorder) WriteMsg(m *dns.Msg) error { r.Msg = m; r.Writes++; return nil }

func (r *Recorder) Write(b []byte) (int, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return 0, err
	}
	return len(b), r.WriteMsg(m)
}

func (r *Recorder) Close() error        { return nil }
func (r *Recorder) TsigStatus() error   { return nil }
func (r *Recorder) TsigTimersOnly(bool) {}
func (r *Recorder) Hijack()             {}
