package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// knotGeoIPAvailable: Knot loads mod-geoip from its module directory
// (Debian's knot-module-geoip), or from -knot-geoip-module.
func knotGeoIPAvailable() bool {
	if *knotGeoMod != "" {
		_, err := os.Stat(*knotGeoMod)
		return err == nil
	}
	m, _ := filepath.Glob("/usr/lib/*/knot/modules-*/geoip.so")
	return len(m) > 0
}

// start returns the command that runs a server pinned to the server CPUs,
// and whether it serves the geo names.
func start(e env, p pass, dir, name string, port int) (*exec.Cmd, bool) {
	pin := func(args ...string) *exec.Cmd {
		c := exec.Command("taskset", append([]string{"-c", p.serverCPU}, args...)...)
		c.Env = append(os.Environ(), fmt.Sprintf("GOMAXPROCS=%d", p.cores))
		return c
	}
	zone := filepath.Join(e.work, "example.com.zone")
	switch name {
	case "geodns", "geodns-rrl", "geodns-base", "geodns-signed":
		zd := filepath.Join(dir, "zones")
		check(os.MkdirAll(zd, 0o755))
		copyFile(zone, filepath.Join(zd, "static.zone"))
		yz := geodnsZone
		if name == "geodns-signed" {
			yz += "dnssec: {algorithm: ECDSAP256SHA256}\n"
		}
		check(os.WriteFile(filepath.Join(zd, "example.com.yaml"), []byte(yz), 0o644))
		bin, err := filepath.Abs(*geodnsBin)
		if name == "geodns-base" {
			bin, err = filepath.Abs(*baseBin)
		}
		check(err)
		// GOMAXPROCS (the cores) is also the number of UDP sockets and
		// readers; cookies are on by default.
		args := []string{bin, "serve", "--zones", zd, "--http", "off", "--log-format", "json",
			"--state-dir", filepath.Join(dir, "state")}
		args = append(args, geodnsListen(e, port)...)
		if p.db == "dbip" {
			args = append(args, "--geoip", e.dbip.v4, "--geoip", e.dbip.v6) // DB-IP's own two files, as geodns reads them
		} else {
			args = append(args, "--geoip", filepath.Join(e.work, "geo.mmdb"))
		}
		if name == "geodns-rrl" {
			// Every answer is accounted; none is limited (dnsperf asks from one address).
			conf := filepath.Join(dir, "geodns.yaml")
			check(os.WriteFile(conf, []byte("rrl: {responses_per_second: 100000000}\n"), 0o644))
			args = append(args, "--config", conf)
		}
		return pin(args...), true
	case "geodns-presigned":
		zd := filepath.Join(dir, "zones")
		check(os.MkdirAll(zd, 0o755))
		copyFile(presignedZone(e), filepath.Join(zd, "presigned.zone"))
		check(os.WriteFile(filepath.Join(zd, "example.com.yaml"), []byte("import: presigned.zone\n"), 0o644))
		bin, err := filepath.Abs(*geodnsBin)
		check(err)
		args := []string{bin, "serve", "--zones", zd, "--http", "off", "--log-format", "json", "--state-dir", filepath.Join(dir, "state")}
		return pin(append(args, geodnsListen(e, port)...)...), false
	case "knot-presigned":
		check(os.MkdirAll(filepath.Join(dir, "db"), 0o755))
		copyFile(presignedZone(e), filepath.Join(dir, "example.com.zone"))
		check(os.WriteFile(filepath.Join(dir, "knot.conf"), []byte(knotConf(e, p, dir, name, port)), 0o644))
		return pin("knotd", "-c", filepath.Join(dir, "knot.conf")), false
	case "nsd-presigned":
		copyFile(presignedZone(e), filepath.Join(dir, "example.com.zone"))
		rrl := "rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0"
		check(os.WriteFile(filepath.Join(dir, "nsd.conf"), fmt.Appendf(nil, nsdConfig, e.listen, port, p.cores, rrl, dir, dir, dir, dir, dir), 0o644))
		return pin("nsd", "-d", "-c", filepath.Join(dir, "nsd.conf")), false
	case nullServer:
		return pin(append([]string{e.null}, geodnsListen(e, port)...)...), true
	case "gdnsd":
		check(os.MkdirAll(filepath.Join(dir, "zones"), 0o755))
		z, err := os.ReadFile(zone)
		check(err)
		check(os.WriteFile(filepath.Join(dir, "zones", "example.com"), append(z, "www 300 DYNA geoip!www\n"...), 0o644))
		mmdb := filepath.Join(e.work, "geo.mmdb")
		if p.db == "dbip" {
			mmdb = e.dbip.geoip2
		}
		check(os.WriteFile(filepath.Join(dir, "config"), fmt.Appendf(nil, gdnsdConfig, e.listen, port, p.cores, p.cores, dir, dir, mmdb), 0o644))
		return pin("gdnsd", "-c", dir, "-f", "start"), true
	case "knot", "knot-signed", "knot-rrl", "knot-geoip":
		check(os.MkdirAll(filepath.Join(dir, "db"), 0o755))
		withWWW(zone, filepath.Join(dir, "example.com.zone"))
		check(os.WriteFile(filepath.Join(dir, "knot.conf"), []byte(knotConf(e, p, dir, name, port)), 0o644))
		return pin("knotd", "-c", filepath.Join(dir, "knot.conf")), name == "knot-geoip"
	case "nsd", "nsd-rrl":
		withWWW(zone, filepath.Join(dir, "example.com.zone"))
		// Debian builds NSD with --enable-ratelimit, so RRL is on (200/s a
		// /24) unless turned off: nsd turns it off, nsd-rrl sets a limit no
		// cell reaches (its accounting runs for every answer).
		rrl := "rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0"
		if name == "nsd-rrl" {
			rrl = "rrl-ratelimit: 100000000\n  rrl-whitelist-ratelimit: 100000000"
		}
		check(os.WriteFile(filepath.Join(dir, "nsd.conf"), fmt.Appendf(nil, nsdConfig, e.listen, port, p.cores, rrl, dir, dir, dir, dir, dir), 0o644))
		return pin("nsd", "-d", "-c", filepath.Join(dir, "nsd.conf")), false
	}
	fatalf("unknown server %q", name)
	return nil, false
}

// geodnsListen is the --listen arguments of geodns (and nullserver, which
// serves through the same code) on port. In the link cells' namespace,
// the three addresses the cells use, not the wildcard the others listen
// on: on a wildcard socket geodns steers datagrams to readers by CPU only
// if every interface spreads its receive work over CPUs
// (resolver/spread_linux.go), and the harness's veth has one queue and no
// RPS. On loopback it steers. (On two cores that cost geodns about a third
// of its QPS per core in 2026-12-03's suite.)
func geodnsListen(e env, port int) []string {
	if e.netns == "" {
		return []string{"--listen", net.JoinHostPort(e.listen, strconv.Itoa(port))}
	}
	var args []string
	for _, a := range []string{addr, linkServer, nicServer} {
		args = append(args, "--listen", net.JoinHostPort(a, strconv.Itoa(port)))
	}
	return args
}

// knotConf: Knot as its documentation configures each part. Workers: one
// of each kind per server core (udp-workers, tcp-workers; the background
// workers run zone events, none during the cells). mod-cookies as a
// global module, as its documentation shows, in every Knot here: the
// cookie cells need it, and a server answering cookies checks for the
// option in the other cells too (geodns and gdnsd do the same).
func knotConf(e env, p pass, dir, name string, port int) string {
	var b strings.Builder
	ecs := ""
	if name == "knot-geoip" {
		// mod-geoip reads a query's ECS option only with the server's ECS
		// support on (knot.conf(5), edns-client-subnet; default off).
		ecs = "    edns-client-subnet: on\n"
	}
	fmt.Fprintf(&b, `server:
    rundir: "%s"
    listen: %s@%d
    udp-workers: %d
    tcp-workers: %d
    background-workers: 1
%sdatabase:
    storage: "%s/db"
log:
  - target: stderr
    any: warning
`, dir, e.listen, port, p.cores, p.cores, ecs, dir)
	global := []string{"mod-cookies"}
	zoneModule := ""
	switch name {
	case "knot-signed":
		zoneModule = "mod-onlinesign" // Knot's online signer: every answer signed when asked, compact denial
	case "knot-rrl":
		// mod-rrl as its documentation's example, at a limit meant to be
		// out of reach. Knot 3.2.6 limits a single /24 anyway: at 10k qps
		// from 127.0.0.1 its log says "enters limiting" and dnsperf loses
		// queries with rate-limit 100,000,000, 1,000,000, 200,000 and,
		// in some runs, 65,535 and 16,383 (tried 2026-12-02). So
		// knot-rrl's numbers are Knot limiting, not Knot accounting, and
		// issue 23's table compares the RRL rows' CPU with plain Knot
		// (less work than accounting: a stricter bar).
		b.WriteString("mod-rrl:\n  - id: default\n    rate-limit: 100000000\n    slip: 2\n")
		global = append(global, "mod-rrl/default")
	case "knot-geoip":
		if *knotGeoMod != "" {
			fmt.Fprintf(&b, "module:\n  - id: mod-geoip\n    file: \"%s\"\n", *knotGeoMod)
		}
		// mod-geoip in geodb mode keyed by country/iso_code, as its
		// documentation's example; the answers per country are in
		// geo.conf (knotGeoConf).
		mmdb, countries := filepath.Join(e.work, "geo.mmdb"), map[string][2]float64{"DE": {50.11, 8.68}, "US": {39.04, -77.49}}
		if p.db == "dbip" {
			mmdb, countries = e.dbip.geoip2, readCountries(e.dbip.countries)
		}
		check(os.WriteFile(filepath.Join(dir, "geo.conf"), []byte(knotGeoConf(countries)), 0o644))
		fmt.Fprintf(&b, "mod-geoip:\n  - id: geo\n    config-file: \"%s/geo.conf\"\n    ttl: 300\n    mode: geodb\n    geodb-file: \"%s\"\n    geodb-key: [ country/iso_code ]\n", dir, mmdb)
		zoneModule = "mod-geoip/geo"
	}
	fmt.Fprintf(&b, `template:
  - id: default
    storage: "%s"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    semantic-checks: off
    global-module: [ %s ]
zone:
  - domain: example.com
    file: "%s/example.com.zone"
`, dir, strings.Join(global, ", "), dir)
	if zoneModule != "" {
		fmt.Fprintf(&b, "    module: %s\n", zoneModule)
	}
	return b.String()
}

func copyFile(from, to string) {
	b, err := os.ReadFile(from)
	check(err)
	check(os.WriteFile(to, b, 0o644))
}

// withWWW writes the zone with www as a plain record, for servers without
// geo answers (and Knot's mod-geoip default: the other site).
// presignedZone returns the benchmark zone (with www's static address)
// signed by ldns-signzone, made once: NSEC3 with no iterations and no salt
// (RFC 9276), a KSK and a ZSK (ECDSA P-256), signatures valid 30 days.
func presignedZone(e env) string {
	out := filepath.Join(e.work, "presigned.zone")
	presignOnce.Do(func() {
		keys := filepath.Join(e.work, "keys")
		check(os.MkdirAll(keys, 0o755))
		src := filepath.Join(keys, "example.com.zone")
		withWWW(filepath.Join(e.work, "example.com.zone"), src)
		var names []string
		for _, ksk := range []bool{true, false} {
			args := []string{"-a", "ECDSAP256SHA256"}
			if ksk {
				args = append(args, "-k")
			}
			cmd := exec.Command("ldns-keygen", append(args, "example.com")...)
			cmd.Dir = keys
			name, err := cmd.Output()
			check(err)
			names = append(names, filepath.Join(keys, strings.TrimSpace(string(name))))
		}
		expire := time.Now().Add(30 * 24 * time.Hour).UTC().Format("20060102150405")
		args := append([]string{"-n", "-a", "1", "-t", "0", "-e", expire, "-f", out, src}, names...)
		if b, err := exec.Command("ldns-signzone", args...).CombinedOutput(); err != nil {
			fatalf("ldns-signzone: %v\n%s", err, b)
		}
	})
	return out
}

var presignOnce sync.Once

func withWWW(from, to string) {
	b, err := os.ReadFile(from)
	check(err)
	check(os.WriteFile(to, append(b, "www 300 IN A 192.0.2.100\n"...), 0o644))
}

// ready waits until the server answers the static name (with an answer
// record, when answers is set).
func ready(server string, answers bool) error {
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	var err error
	for range 150 {
		var r *dns.Msg
		r, _, err = c.Exchange(new(dns.Msg).SetQuestion("static.example.com.", dns.TypeA), server)
		if err == nil && (len(r.Answer) == 1 || !answers) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// ecsNet is the fixed ECS network of the ecs cells: one the pass's data
// places in the US (nearest the na site).
func ecsNet(e env, p pass) net.IP {
	if p.db == "dbip" {
		return net.IP(e.dbip.usNet.AsSlice())
	}
	return net.ParseIP(ecsNetSynthetic).To4()
}

// ecsOption is dnsperf's -E value for an ECS /24.
func ecsOption(n net.IP) string {
	return fmt.Sprintf("8:00011800%02x%02x%02x", n[0], n[1], n[2])
}

// verify checks the answers the cells measure; a server answering wrong
// would be measured doing something else.
func verify(e env, name, server string, geo bool, p pass) {
	c := &dns.Client{Timeout: time.Second}
	ask := func(qname string, qtype uint16, ecs bool) *dns.Msg {
		q := new(dns.Msg).SetQuestion(qname, qtype)
		if ecs {
			q.SetEdns0(1232, false)
			q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: ecsNet(e, p)})
		}
		r, _, err := c.Exchange(q, server)
		if err != nil {
			fatalf("%s: %s: %v", name, qname, err)
		}
		return r
	}
	first := func(r *dns.Msg) string {
		if len(r.Answer) == 0 {
			return dns.RcodeToString[r.Rcode] + " (no answer)"
		}
		if a, ok := r.Answer[0].(*dns.A); ok {
			return a.A.String()
		}
		return r.Answer[0].String()
	}
	want := map[string]string{"static": "192.0.2.10", "www": "192.0.2.100", "www-ecs": "192.0.2.100"}
	if geo {
		// The synthetic data puts loopback in Germany (eu) and the ECS
		// network in the US (na); DB-IP has no loopback (every server
		// answers its default, the other site) and the ECS network in the
		// eastern US (na).
		want["www"], want["www-ecs"] = "192.0.2.101", "192.0.2.102"
		if p.db == "dbip" {
			want["www"] = "192.0.2.100"
		}
	}
	got := map[string]string{
		"static":  first(ask("static.example.com.", dns.TypeA, false)),
		"www":     first(ask("www.example.com.", dns.TypeA, false)),
		"www-ecs": first(ask("www.example.com.", dns.TypeA, true)),
	}
	for k, w := range want {
		if got[k] != w {
			fatalf("%s answers %s with %s, want %s", name, k, got[k], w)
		}
	}
	if r := ask("nx-1.example.com.", dns.TypeA, false); r.Rcode != dns.RcodeNameError {
		fatalf("%s: nx-1.example.com: %s, want NXDOMAIN", name, dns.RcodeToString[r.Rcode])
	}
	// The cookie cells measure servers that answer a client cookie with
	// a server cookie (RFC 7873): check each does.
	if slices.ContainsFunc(p.cells, func(c cell) bool { return c.cookie && serves(name, c) }) {
		q := new(dns.Msg).SetQuestion("static.example.com.", dns.TypeA)
		q.SetEdns0(1232, false)
		q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: clientCookie})
		r, _, err := c.Exchange(q, server)
		if err != nil {
			fatalf("%s: cookie query: %v", name, err)
		}
		ok := false
		if o := r.IsEdns0(); o != nil {
			for _, opt := range o.Option {
				if ck, is := opt.(*dns.EDNS0_COOKIE); is && strings.HasPrefix(ck.Cookie, clientCookie) && len(ck.Cookie) > len(clientCookie) {
					ok = true
				}
			}
		}
		if !ok {
			fatalf("%s answers a client cookie without a server cookie: cookies are not on", name)
		}
	}
	// A signed server signs what the DO cells ask, the denial too; an
	// unsigned one does not.
	for _, qname := range []string{"static.example.com.", "nx-2.example.com."} {
		q := new(dns.Msg).SetQuestion(qname, dns.TypeA)
		q.SetEdns0(1232, true)
		r, _, err := c.Exchange(q, server)
		if err != nil {
			fatalf("%s: %s DO: %v", name, qname, err)
		}
		sigs := 0
		for _, rr := range append(r.Answer, r.Ns...) {
			if rr.Header().Rrtype == dns.TypeRRSIG {
				sigs++
			}
		}
		if signed := strings.HasSuffix(name, "-signed") || strings.HasSuffix(name, "-presigned"); signed != (sigs > 0) {
			fatalf("%s: %s with DO: %d signatures", name, qname, sigs)
		}
	}
}

// geodnsZone serves the static data (imported) and www as a service with
// sites by distance: Germany is nearest eu, Ashburn nearest na.
const geodnsZone = `origin: example.com.
import: static.zone
records:
  www: {service: web}
sites:
  other: {lat: -33.9, lon: 18.4}
  eu: {lat: 50.11, lon: 8.68}
  na: {lat: 39.04, lon: -77.49}
services:
  web:
    ttl: 300
    endpoints:
      - {site: other, address: 192.0.2.100}
      - {site: eu, address: 192.0.2.101}
      - {site: na, address: 192.0.2.102}
    site_order: [other]
`

// gdnsdConfig: www by the client's coordinates (auto_dc_coords), as
// geodns does; address, port, UDP and TCP threads (one of each per server
// core, gdnsd's per-address settings), run_dir, state_dir, the mmdb.
// gdnsd 3.x answers DNS cookies by default (disable_cookies is false) and
// has no response rate limiting.
const gdnsdConfig = `options => {
  listen => { %s:%d => { udp_threads => %d, tcp_threads => %d } }
  run_dir => %s/run
  state_dir => %s/state
}
plugins => {
  geoip => {
    maps => {
      geo => {
        geoip2_db => %s
        datacenters => [ other, eu, na ]
        auto_dc_coords => { other => [ -33.9, 18.4 ], eu => [ 50.11, 8.68 ], na => [ 39.04, -77.49 ] }
      }
    }
    resources => {
      www => {
        map => geo
        service_types => up
        dcmap => { other => 192.0.2.100, eu => 192.0.2.101, na => 192.0.2.102 }
      }
    }
  }
}
`

// nsdConfig: address, port, server-count (one per server core), the RRL
// settings, zones dir, pid file dir, xfrd dir, zone list dir, log dir.
const nsdConfig = `server:
  ip-address: %s@%d
  server-count: %d
  %s
  username: ""
  chroot: ""
  zonesdir: "%s"
  database: ""
  pidfile: "%s/nsd.pid"
  xfrdfile: "%s/xfrd.state"
  zonelistfile: "%s/zone.list"
  logfile: "%s/nsd.log"
  hide-version: yes
remote-control:
  control-enable: no
zone:
  name: example.com
  zonefile: example.com.zone
`
