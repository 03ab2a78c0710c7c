package main

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// lookup finds one result.
type lookup []result

func (l lookup) get(pass, server, cell string, round int) (result, bool) {
	for _, r := range l {
		if r.pass == pass && r.server == server && r.cell == cell && r.round == round {
			return r, true
		}
	}
	return result{}, false
}

// ratios is the median over rounds of a/b, each taken within its round;
// "–" when no round has both.
func (l lookup) ratios(pass, a, b, cell string, f func(result) float64) string {
	return ratio(l.ratioList(pass, a, b, cell, f))
}

func (l lookup) ratioList(pass, a, b, cell string, f func(result) float64) []float64 {
	var xs []float64
	for r := 1; r <= *rounds; r++ {
		x, ok1 := l.get(pass, a, cell, r)
		y, ok2 := l.get(pass, b, cell, r)
		if ok1 && ok2 && f(x) > 0 && f(y) > 0 {
			xs = append(xs, f(x)/f(y))
		}
	}
	return xs
}

func (l lookup) med(pass, server, cell string, f func(result) float64) float64 {
	var xs []float64
	for r := 1; r <= *rounds; r++ {
		if x, ok := l.get(pass, server, cell, r); ok {
			xs = append(xs, f(x))
		}
	}
	return median(xs)
}

var (
	perCore   = func(r result) float64 { return r.perCore }
	qpsOf     = func(r result) float64 { return r.qps }
	fixedCPU  = func(r result) float64 { return r.fixedCPU }
	fixedCore = func(r result) float64 { return r.fixedCore }
	rssOf     = func(r result) float64 { return float64(r.rssKB) }
)

// knotFor is the Knot a cell compares with: mod-geoip for the geo cells.
func knotFor(c cell, rrl bool) string {
	switch {
	case rrl:
		return "knot-rrl"
	case c.geo:
		return "knot-geoip"
	}
	return "knot"
}

// summarize renders one table per pass: per cell and server, the median
// over rounds of each number and of each ratio taken within a round.
func summarize(results []result, passes []pass) string {
	l := lookup(results)
	var b strings.Builder
	for _, p := range passes {
		fmt.Fprintf(&b, "### %s\n\n%s, `go run ./benchmarks/peers -rounds %d -duration %v -fixed-qps %d -cores %d -db %s` (server on CPU %s, load on CPU %s; medians of %d rounds)\n\n",
			p.label, time.Now().Format(time.DateOnly), *rounds, *duration, *fixedQPS, p.cores, p.db, p.serverCPU, p.cpus, *rounds)
		if p.cores == 2 {
			b.WriteString("Two server cores: the load generator shares CPUs 0-1 with the server (this VM has no third core).\n\n")
		}
		refs := []string{}
		for _, s := range []string{"geodns", "gdnsd", "nsd", "knot", "knot-signed", "nsd-presigned", "knot-presigned"} {
			if slices.Contains(p.servers, s) || (s == "knot" && slices.Contains(p.servers, "knot-geoip")) {
				refs = append(refs, s)
			}
		}
		fmt.Fprint(&b, "| cell | server | QPS | server CPU | QPS per server core |")
		for _, s := range refs {
			fmt.Fprintf(&b, " ÷ %s |", s)
		}
		fmt.Fprintln(&b, " answered @10k | p50 ms @10k | p99 ms @10k | p99 ÷ Knot | CPU @10k | CPU ÷ Knot | core busy @10k | core ÷ Knot | peak RSS | RSS ÷ Knot |")
		fmt.Fprintln(&b, "|---|---|---|---|---|"+strings.Repeat("---|", len(refs))+"---|---|---|---|---|---|---|---|---|---|")
		for _, c := range p.cells {
			for _, s := range p.servers {
				if _, ok := l.get(p.label, s, c.name, 1); !ok {
					if _, ok := l.get(p.label, s, c.name, *rounds); !ok {
						continue
					}
				}
				knot := knotFor(c, strings.HasSuffix(s, "-rrl"))
				if c.fixedOnly {
					fmt.Fprintf(&b, "| %s | %s | – | – | – |", c.name, s)
				} else {
					fmt.Fprintf(&b, "| %s | %s | %.0f | %.0f %% | %.0f |", c.name, s, l.med(p.label, s, c.name, qpsOf),
						100*l.med(p.label, s, c.name, func(r result) float64 { return r.cpu }), l.med(p.label, s, c.name, perCore))
				}
				for _, ref := range refs {
					if ref == "knot" {
						ref = knotFor(c, false)
					}
					fmt.Fprintf(&b, " %s |", l.ratios(p.label, s, ref, c.name, perCore))
				}
				if p.fixed || c.fixedOnly {
					fmt.Fprintf(&b, " %.0f | %.3f | %.3f | %s | %.1f %% | %s | %.1f %% | %s |",
						l.med(p.label, s, c.name, func(r result) float64 { return r.fixedRate }), l.med(p.label, s, c.name, func(r result) float64 { return r.p50 }),
						l.med(p.label, s, c.name, func(r result) float64 { return r.p99 }),
						l.ratios(p.label, s, knot, c.name, func(r result) float64 { return r.p99 }),
						100*l.med(p.label, s, c.name, fixedCPU), l.ratios(p.label, s, knot, c.name, fixedCPU),
						100*l.med(p.label, s, c.name, fixedCore), l.ratios(p.label, s, knot, c.name, fixedCore))
				} else {
					b.WriteString(" – | – | – | – | – | – | – | – |") // no fixed-rate run in this pass
				}
				fmt.Fprintf(&b, " %.0f MB | %s |\n", l.med(p.label, s, c.name, rssOf)/1024, l.ratios(p.label, s, knot, c.name, rssOf))
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// issue23Table is issue 23's table: geodns over each peer (QPS per server
// core), CPU at the fixed rate and peak RSS over Knot's, per cell and
// pass; the RRL rows set geodns-rrl against knot-rrl and nsd-rrl (gdnsd
// has no RRL); then the 1 -> 2 core scaling per server.
func issue23Table(results []result, passes []pass) string {
	l := lookup(results)
	var b strings.Builder
	fmt.Fprintf(&b, "## Issue 23 (%s, `go run ./benchmarks/peers -suite issue23 -rounds %d -duration %v`)\n\n", time.Now().Format(time.DateOnly), *rounds, *duration)
	b.WriteString("Ratios are medians over rounds of ratios within a round. QPS ratios are per server core; ÷ Knot is Knot with mod-geoip on the geo cells, knot-rrl on the RRL rows (÷ NSD: nsd-rrl). CPU ÷ Knot at a fixed 10k qps (1-core passes; the RRL rows against Knot without RRL, as knot-rrl limits that rate from one /24): the server process's CPU time, and its core's busy time (the server's CPU less that core's idle time: it also counts the network work the kernel did on that core outside the server's system calls). RSS: peak (VmHWM) after the cell.\n\n")
	b.WriteString("| pass | cell | geodns ÷ gdnsd | ÷ NSD | ÷ Knot | CPU @10k ÷ Knot | core busy @10k ÷ Knot | geodns peak RSS | RSS ÷ Knot |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range passes {
		for _, rrl := range []bool{false, true} {
			g, nsd := "geodns", "nsd"
			if rrl {
				g, nsd = "geodns-rrl", "nsd-rrl"
			}
			if !slices.Contains(p.servers, g) {
				continue
			}
			for _, c := range p.cells {
				if !serves(g, c) || c.gen == "none" {
					continue
				}
				name := c.name
				if rrl {
					name += " (RRL on)"
				}
				knot := knotFor(c, rrl)
				gd := l.ratios(p.label, g, "gdnsd", c.name, perCore)
				// knot-rrl limits 10k qps from one /24 (servers.go): the
				// RRL rows' CPU is set against Knot without RRL.
				cpuKnot := knotFor(c, false)
				cpu := l.ratios(p.label, g, cpuKnot, c.name, fixedCPU)
				// CPU at the fixed rate compares like with like only when
				// both answered it.
				rate := func(r result) float64 { return r.fixedRate }
				for _, s := range []string{g, cpuKnot} {
					if got := l.med(p.label, s, c.name, rate); got > 0 && got < 0.95*float64(*fixedQPS) {
						cpu += fmt.Sprintf(" (%s answered only %.0f/s)", s, got)
					}
				}
				kq := l.ratios(p.label, g, knot, c.name, perCore)
				if rrl && l.med(p.label, knot, c.name, func(r result) float64 { return r.lost }) > 0 {
					kq = "– (knot-rrl limits one /24 at this rate)"
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %.0f MB | %s |\n", p.label, name, gd,
					l.ratios(p.label, g, nsd, c.name, perCore), kq,
					cpu, l.ratios(p.label, g, cpuKnot, c.name, fixedCore), l.med(p.label, g, c.name, rssOf)/1024, l.ratios(p.label, g, knot, c.name, rssOf))
			}
		}
	}
	// Scaling: a 2-core pass over the 1-core pass of the same data, QPS
	// (not per core: two cores should answer about twice as much).
	var sc strings.Builder
	for _, p2 := range passes {
		if p2.cores != 2 {
			continue
		}
		i := slices.IndexFunc(passes, func(p pass) bool { return p.cores == 1 && p.db == p2.db })
		if i < 0 {
			continue
		}
		p1 := passes[i]
		for _, c := range p2.cells {
			fmt.Fprintf(&sc, "| %s | %s |", p2.db, c.name)
			for _, s := range []string{"geodns", "gdnsd", "knot"} {
				if s == "knot" {
					s = knotFor(c, false)
				}
				q1, q2 := l.med(p1.label, s, c.name, qpsOf), l.med(p2.label, s, c.name, qpsOf)
				if q1 > 0 && q2 > 0 {
					fmt.Fprintf(&sc, " %.2f (%.0f → %.0f) |", q2/q1, q1, q2)
				} else {
					sc.WriteString(" – |")
				}
			}
			sc.WriteString("\n")
		}
	}
	if sc.Len() > 0 {
		b.WriteString("\nScaling from one server core to two: QPS on 2 cores ÷ QPS on 1 (medians). On 2 cores the load generator runs on the same two CPUs as the server (this VM has no third), so these understate what a server does with two cores of its own.\n\n")
		b.WriteString("| data | cell | geodns | gdnsd | Knot |\n|---|---|---|---|---|\n")
		b.WriteString(sc.String())
	}
	for _, p := range passes {
		if !slices.ContainsFunc(p.cells, func(c cell) bool { return c.name == "static-gen" }) {
			continue
		}
		fmt.Fprintf(&b, "\necsload's check (%s): its QPS on the static name ÷ dnsperf's, same server process, same round:", p.label)
		for _, s := range []string{"geodns", "gdnsd"} {
			var xs []float64
			for r := 1; r <= *rounds; r++ {
				g, ok1 := l.get(p.label, s, "static-gen", r)
				d, ok2 := l.get(p.label, s, "static", r)
				if ok1 && ok2 && d.qps > 0 {
					xs = append(xs, g.qps/d.qps)
				}
			}
			fmt.Fprintf(&b, " %s %s;", s, ratio(xs))
		}
		b.WriteString(" (≥ 1.00: it saturates the server at least as well as dnsperf).\n")
	}
	b.WriteString("\nNot measured: gdnsd has no RRL; NSD 4.6 has no DNS cookies (4.8 added them), so it runs no cookie cell; dnsperf sends one EDNS option, so ecs+cookie and ecs200k are sent by benchmarks/ecsload (static-gen compares it with dnsperf).\n")
	return b.String()
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.SortFunc(s, cmp.Compare)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ratio(xs []float64) string {
	if len(xs) == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", median(xs))
}
