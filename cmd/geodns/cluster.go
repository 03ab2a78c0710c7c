package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/geodns/geodns/api"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/geodns/geodns/cluster"
	"github.com/geodns/geodns/geo"
	"github.com/geodns/geodns/health"
	"github.com/geodns/geodns/opstate"
	"github.com/geodns/geodns/zones"
	"github.com/prometheus/client_golang/prometheus"
)

// clusterParts are a node's parts of an NS set (docs/cluster.md): its
// session on etcd, the shared operator state, the serial source and the
// reports that show drift.
type clusterParts struct {
	cluster  *cluster.Cluster
	operator *cluster.OperatorStore
	serials  *cluster.Serials
	reports  *cluster.Reports
	reload   func()         // reloads every zone, removing none: set by run's caller
	votes    *cluster.Votes // health across the set: set by shareHealth
}

func newClusterParts(cfg cluster.Config, local *opstate.FileStore, log *slog.Logger, reg prometheus.Registerer) (*clusterParts, error) {
	c, err := cluster.New(cluster.Options{Config: cfg, Version: version, Log: log, Registerer: reg})
	if err != nil {
		return nil, err
	}
	p := &clusterParts{cluster: c, operator: cluster.NewOperatorStore(c, local)}
	p.serials = cluster.NewSerials(c, func() {
		if p.reload != nil {
			p.reload()
		}
	})
	return p, nil
}

// sources tells the reports what the node serves; call before run.
func (p *clusterParts) sources(set *atomic.Pointer[zones.Set], loc *geo.Locator) {
	p.reports = cluster.NewReports(p.cluster, cluster.Sources{Zones: set.Load, GeoIP: loc.Databases, Operator: p.operator})
	p.operator.OnApplied = p.reports.Changed
}

// shareHealth has the node's health decided from every node's votes,
// its targets shared among the probers (cluster.Votes); call before run.
func (p *clusterParts) shareHealth(cfg cluster.Config, h *health.Manager, reg prometheus.Registerer) {
	p.votes = cluster.NewVotes(p.cluster, h, cluster.VotesOptions{Probers: cfg.Probers, Grace: cfg.PartitionGrace}, reg)
}

// run runs the parts until ctx ends, or the session ends with an error
// (another live process uses this node's name): then it stops them all
// and returns it, and the server stops.
func (p *clusterParts) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { p.operator.Run(ctx) })
	wg.Go(func() { p.reports.Run(ctx) })
	wg.Go(func() { p.serials.Run(ctx) }) // a content renumbered elsewhere: reload
	if p.votes != nil {
		p.votes.UseReports(p.reports)
		wg.Go(func() { p.votes.Run(ctx) })
	}
	err := p.cluster.Run(ctx)
	cancel()
	wg.Wait()
	return err
}

// clusterCmd is `geodns cluster status [--api URL]`: the NS set as one
// node sees it, as a table.
func clusterCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "status" {
		fmt.Fprint(stderr, "usage: geodns cluster status [--api URL] [--json]\nThe API is --api, else $GEODNS_API, else http://127.0.0.1:8053.\n")
		return 2
	}
	fs := flag.NewFlagSet("cluster status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	apiURL := fs.String("api", defaultAPI(), "a node's API URL; $GEODNS_API when not given")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	v, raw, err := fetchCluster(*apiURL)
	if err != nil {
		fmt.Fprintf(stderr, "geodns cluster status: %v\n", err)
		return 1
	}
	if *asJSON {
		stdout.Write(raw)
	} else {
		printCluster(stdout, v)
	}
	// The same codes with --json: a script reading the JSON can alert on
	// them as well.
	switch {
	case !v.Connected:
		return 4 // before drift: a stale view may hide drift or show drift that is gone
	case v.Drift:
		return 3 // scripts can alert on drift
	}
	return 0
}

func fetchCluster(base string) (api.ClusterView, []byte, error) {
	var v api.ClusterView
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(strings.TrimRight(base, "/") + "/api/v1/cluster")
	if err != nil {
		return v, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return v, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		json.Unmarshal(raw, &e)
		return v, nil, fmt.Errorf("%s: %s %s", base, resp.Status, e.Error)
	}
	return v, raw, json.Unmarshal(raw, &v)
}

// printCluster writes the nodes (region, connection, applied revision,
// zones and drift), each drifting node's differences, then the health
// votes: a count, and the probes the nodes do not agree on or the set
// holds down.
func printCluster(w io.Writer, v api.ClusterView) {
	conn := "connected"
	if !v.Connected {
		conn = fmt.Sprintf("NOT connected to etcd for %.0fs: serving its last view", v.StaleSeconds)
	}
	fmt.Fprintf(w, "as seen by %s (%s)\n\n", v.Node, conn)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tREGION\tSTATE\tREVISION\tZONES\tGEOIP\tDRIFT")
	for _, n := range v.Nodes {
		name := n.Node
		if n.Self {
			name += " *"
		}
		lease := nodeState(n)
		drift := "-"
		if len(n.Drift) > 0 {
			drift = fmt.Sprintf("DRIFT (%d)", len(n.Drift))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\n", name, dash(n.Region), lease, n.OperatorRevision, zoneList(n.Report), len(n.GeoIP), drift)
	}
	tw.Flush()
	for _, n := range v.Nodes {
		for _, d := range n.Drift {
			fmt.Fprintf(w, "drift: %s: %s\n", n.Node, d)
		}
	}
	switch {
	case !v.Connected:
		fmt.Fprintf(w, "\n%s is NOT connected to etcd (for %.0fs): this is its last view and may be stale; its log says why (\"no lease from etcd\")\n",
			v.Node, v.StaleSeconds)
	case !v.Drift:
		fmt.Fprintln(w, "\nno drift: every live node serves the same zones, serials and GeoIP data")
	}
	for _, n := range v.Nodes {
		switch n.State {
		case cluster.StateLost:
			fmt.Fprintf(w, "%s: lost at %s (its lease lapsed: dead, or cut off from etcd and serving its last view); revision and zones as it last reported\n",
				n.Node, n.Since.Format(time.RFC3339))
		case cluster.StateLeft:
			fmt.Fprintf(w, "%s: left at %s (stopped); revision and zones as it last reported\n", n.Node, n.Since.Format(time.RFC3339))
		}
	}
	printVotes(w, v.Votes)
}

// nodeState is a node's state for the table: live, lost or left (with
// how long ago; revision and zones are then its last report's), lost for
// another node not connected, and "cut off" for the node answering when it
// is not: it serves, from its last view (it said "lost", as if dead).
func nodeState(n cluster.NodeView) string {
	switch {
	case n.State == cluster.StateLost || n.State == cluster.StateLeft:
		return fmt.Sprintf("%s %s ago", n.State, time.Since(n.Since).Round(time.Second))
	case !n.Connected && n.Self:
		return "cut off"
	case !n.Connected:
		return "lost"
	}
	return "live"
}

// maxVoteRows bounds the probes listed: an NS set may share 30,000.
const maxVoteRows = 20

func printVotes(w io.Writer, votes []api.ProbeVotes) {
	if len(votes) == 0 {
		return
	}
	var up, down, split, none int
	var shown []api.ProbeVotes
	for _, p := range votes {
		agree := true
		for _, n := range p.Votes {
			agree = agree && n.Up == p.Up
		}
		switch {
		case len(p.Votes) == 0:
			// Not "up by every vote": its last decision stands, checked by nobody.
			none++
		case !agree:
			split++
		case p.Up:
			up++
			continue
		default:
			down++
		}
		shown = append(shown, p)
	}
	fmt.Fprintf(w, "\nhealth votes on %d probes: %d up by every vote, %d down, %d where the nodes disagree, %d with no votes\n", len(votes), up, down, split, none)
	if len(shown) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tDECIDED\tPROBED HERE\tVOTES")
	for i, p := range shown {
		if i == maxVoteRows {
			fmt.Fprintf(tw, "+%d more (--json lists every probe)\n", len(shown)-i)
			break
		}
		decided := "down"
		switch {
		case !p.Decided:
			decided = "no votes yet"
		case len(p.Votes) == 0:
			decided = upDown(p.Up) + ", no votes (kept)"
		case p.Up:
			decided = "up"
		}
		var vs []string
		for _, n := range p.Votes {
			vs = append(vs, fmt.Sprintf("%s=%s", n.Node, upDown(n.Up)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Target, decided, yesNo(p.Runs), dash(strings.Join(vs, " ")))
	}
	tw.Flush()
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// zoneList shows zones as origin@serial, sorted.
func zoneList(rep cluster.Report) string {
	if rep.ZonesOmitted > 0 {
		return fmt.Sprintf("%d zones (not in its report: too large for etcd)", rep.ZonesOmitted)
	}
	var out []string
	for o, z := range rep.Zones {
		out = append(out, fmt.Sprintf("%s@%d", o, z.Serial))
	}
	sort.Strings(out)
	if len(out) > 4 {
		out = append(out[:4], fmt.Sprintf("+%d", len(out)-4))
	}
	return dash(strings.Join(out, ","))
}
