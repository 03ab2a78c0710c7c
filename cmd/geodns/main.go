// Command geodns is an authoritative DNS server that answers service names
// with the nearest healthy site. This package only wires the parts together.
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/geodns/geodns/api"
	"github.com/geodns/geodns/cluster"
	"github.com/geodns/geodns/dnssec"
	"github.com/geodns/geodns/geo"
	healthpkg "github.com/geodns/geodns/health"
	"github.com/geodns/geodns/internal/procs"
	"github.com/geodns/geodns/opstate"
	"github.com/geodns/geodns/resolver"
	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/ui"
	"github.com/geodns/geodns/xfr"
	"github.com/geodns/geodns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// version is set at build time with -ldflags "-X main.version=..." (the
// Makefile gives `git describe --tags`, or 0.1.0-dev+COMMIT before the
// first tag).
var version = "0.1.0-dev"

// commit is the fallback for a binary built without VCS stamping (GOFLAGS
// -buildvcs=false, or a tree without .git as in the Docker build): the
// Makefile sets it with -X main.commit=...
var commit = "unknown"

// versionText is what `geodns version` prints: the version, the commit the
// Go toolchain stamped into the binary, the Go version, and the credit the
// DB-IP licence (CC BY 4.0) asks for.
func versionText() string {
	commit, modified := commit, false
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if modified {
		commit += " (modified)"
	}
	return fmt.Sprintf("geodns %s\ncommit %s\n%s %s/%s\nIP Geolocation by DB-IP (https://db-ip.com), CC BY 4.0, when DB-IP data is used\n",
		version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

const usage = `usage:
  geodns serve   [--config geodns.yaml] [--zones DIR] [--listen ADDR:PORT]... [--geoip FILE]...
                 [--http ADDR:PORT|off] [--api-token-file FILE] [--state-dir DIR]
                 [--probe-allow CIDR]... [--log-format text|json]
  geodns check   [--config geodns.yaml] [--zones DIR] [--import-dir DIR]... [--strict] [FILE.yaml...]
  geodns explain [--zones DIR] [--geoip FILE]... --client IP[/LEN] NAME [TYPE]
  geodns ctl     [--api URL] [--token-file FILE] status|drain|undrain|force-up|force-down|dial|explain ...
  geodns drill   --api URL --site SITE [--ns ADDR,...] [--clients NET,...] [--duration 30s] [--limit 3s]
  geodns cluster status [--api URL] [--json]
  geodns import  --origin ZONE FILE.zone
  geodns dnssec  status|ds|rollover --zone ZONE [--config FILE] [--key-dir DIR] [--role csk|ksk|zsk]
  geodns version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "check":
		return check(args[1:], stdout, stderr)
	case "import":
		return importCmd(args[1:], stdout, stderr)
	case "explain":
		return explain(args[1:], stdout, stderr)
	case "drill":
		return drill(args[1:], stdout, stderr)
	case "cluster":
		return clusterCmd(args[1:], stdout, stderr)
	case "ctl":
		return ctl(args[1:], stdout, stderr)
	case "dnssec":
		return dnssecCmd(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprint(stdout, versionText())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "geodns: unknown command %q\n%s", args[0], usage)
	return 2
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "config file (YAML)")
	zonesDir := fs.String("zones", "", "directory of <zone>.yaml files (default zones)")
	logFormat := fs.String("log-format", "", "text or json (default text)")
	stateDir := fs.String("state-dir", "", "directory for health state and overrides (default: not kept)")
	httpAddr := fs.String("http", "", "admin API and metrics address, or off (default 127.0.0.1:8053)")
	tokenFile := fs.String("api-token-file", "", "file holding the API bearer token (else GEODNS_API_TOKEN)")
	var listen, geoip, allow listFlag
	fs.Var(&listen, "listen", "DNS address, UDP and TCP; repeatable (default 127.0.0.1:5353)")
	fs.Var(&geoip, "geoip", "GeoIP database (.mmdb); repeatable")
	fs.Var(&allow, "probe-allow", "network health checks may connect to; repeatable (default any)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		// Flag parsing stops at the first argument, so `serve FILE --zones
		// DIR` would drop both and start on the defaults.
		fmt.Fprintf(stderr, "geodns serve: unexpected argument %q (a config file is --config FILE)\n", fs.Arg(0))
		return 2
	}
	for _, a := range listen {
		if err := checkAddr("--listen", a); err != nil {
			fmt.Fprintf(stderr, "geodns: %v\n", err)
			return 2
		}
	}
	if *httpAddr != "" && *httpAddr != "off" {
		if err := checkAddr("--http", *httpAddr); err != nil {
			fmt.Fprintf(stderr, "geodns: %v (or off)\n", err)
			return 2
		}
	}
	cfg := defaultConfig()
	if *configFile != "" {
		if err := cfg.load(*configFile); err != nil {
			fmt.Fprintln(stderr, err) // file:line:col: message, one a line
			return 1
		}
	}
	// Flags override the config file, which overrides the defaults.
	if *zonesDir != "" {
		cfg.Zones = *zonesDir
	}
	if len(listen) > 0 {
		cfg.Listen = listen
	}
	if *logFormat != "" {
		cfg.LogFormat = *logFormat
	}
	if len(geoip) > 0 {
		cfg.GeoIP = geoip
	}
	if len(allow) > 0 {
		cfg.ProbeAllow = allow
	}
	if *stateDir != "" {
		cfg.StateDir = *stateDir
	}
	if *httpAddr != "" {
		cfg.HTTP = *httpAddr
	}
	if *tokenFile != "" {
		cfg.APITokenFile = *tokenFile
	}
	token, err := cfg.token()
	if err != nil {
		fmt.Fprintf(stderr, "geodns: %v\n", err)
		return 2
	}
	probeAllow, err := cfg.probeAllow()
	if err != nil {
		fmt.Fprintf(stderr, "geodns: %v\n", err)
		return 2
	}
	log, err := newLogger(cfg.LogFormat, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "geodns: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "geodns_build_info",
		Help: "Always 1; the labels say which geodns is running."}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	reg.MustRegister(buildInfo)
	// Two state files, one owner each: health.json (probe states, health's)
	// and operator.json (drains, forces, dials: opstate's). The operator
	// state is opened first: it migrates what an older health.json held
	// before health rewrites that file with probe states only.
	stateFile, opFile := "", ""
	if cfg.StateDir != "" {
		if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
			log.Error("state directory", "error", err)
			return 1
		}
		stateFile, opFile = filepath.Join(cfg.StateDir, "health.json"), filepath.Join(cfg.StateDir, "operator.json")
	}
	localOperator := opstate.OpenFile(opstate.FileOptions{Path: opFile, Legacy: stateFile, Log: log, Registerer: reg})
	var operator opstate.Store = localOperator
	// In an NS set (cluster.go) the operator state is shared through etcd,
	// and the state file keeps this node's last view of it.
	var clus *clusterParts
	if cfg.Cluster.Enabled() {
		if clus, err = newClusterParts(cfg.Cluster, localOperator, log, reg); err != nil {
			log.Error("cluster", "error", err)
			return 2
		}
		operator = clus.operator
		if cfg.StateDir == "" {
			log.Warn("cluster: state_dir is not set: a node that starts while etcd is unreachable has no drains until it connects")
		} else {
			// A node restarted in an etcd outage serves the set's serials.
			clus.serials.SetCache(filepath.Join(cfg.StateDir, "serials.json"))
			defer clus.serials.Flush()
		}
	}
	// The router's plan loop rebuilds its plans, and reports services
	// all down, whenever health, operator state (or, through SetZones, the
	// zones) changes.
	router := &route.Router{Metrics: route.NewMetrics(reg), Log: log, Operator: operator}
	operator.Watch(func(*opstate.State) { router.Changed() })
	health := healthpkg.NewManager(healthpkg.Options{Allow: probeAllow, StateFile: stateFile, Log: log, Registerer: reg,
		OnChange: router.Changed})
	if clus != nil {
		clus.shareHealth(cfg.Cluster, health, reg) // health decided from every node's votes
	}
	if len(probeAllow) == 0 {
		log.Warn("probe_allow is not set: health checks may connect anywhere a zone file points them")
	}

	if cfg.StateDir == "" {
		log.Warn("state_dir is not set: drains, forces and dials, health states and serials are lost at restart")
	}
	if st, err := os.Stat(cfg.Zones); err != nil || !st.IsDir() {
		// Nothing to watch: the watcher would stop the server a moment
		// after it said it serves.
		if err == nil {
			err = errors.New("not a directory")
		}
		log.Error("zones directory", "dir", cfg.Zones, "error", err)
		return 1
	}
	var set atomic.Pointer[zones.Set]
	zones.SetCompileHook(loadingGC) // GOGC 200 while zones compile (knobs.go)
	watcher := zones.NewWatcher(cfg.Zones, &set, zones.NewMetrics(reg), log)
	watcher.OnChange = health.SetZones
	watcher.Limits = zones.Limits{MaxFileSize: cfg.ZoneMaxFileSize, MaxRecords: cfg.ZoneMaxRecords, ImportDirs: cfg.ZoneImportDirs}
	watcher.MissingGrace = cfg.ZoneMissingGrace
	if clus != nil {
		watcher.Serials = clus.serials
	} else if cfg.StateDir != "" {
		// A restart numbers automatic serials as a reload does (never
		// below what secondaries and caches hold).
		kept := zones.OpenSerialFile(filepath.Join(cfg.StateDir, "serials.json"), log)
		defer kept.Flush()
		watcher.Serials = kept
	}
	if err := watcher.Scan(true); err != nil && len(set.Load().Zones()) == 0 {
		log.Warn("no zone loaded; serving REFUSED until a zone file loads", "dir", cfg.Zones, "error", err)
	}

	// Locate before listening: no query is answered without the GeoIP data.
	locator := newLocator(cfg.GeoIP, log)
	for _, path := range slices.Compact(slices.Sorted(slices.Values(cfg.GeoIP))) {
		// A database that does not open leaves clients in the default
		// order (or an older version of it): a log line alone is missed.
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "geodns_geoip_load_failing",
			Help:        "1 while a configured GeoIP database failed to open (at start, or when its file changed): not in use, or an older version is.",
			ConstLabels: prometheus.Labels{"file": path},
		}, func() float64 {
			if locator.Failing(path) {
				return 1
			}
			return 0
		}))
	}

	var lns []resolver.Listener
	for _, addr := range cfg.Listen {
		ln, err := resolver.Listen(addr)
		if err != nil {
			log.Error("cannot listen", "addr", addr, "error", err)
			return 1
		}
		if cfg.MaxUDPSize > resolver.MaxUnfragmentedUDP {
			// Answers may outgrow a link: fragmented here rather than lost.
			if err := ln.AllowFragments(); err != nil {
				log.Warn("UDP answers above the link MTU may be dropped", "addr", addr, "error", err)
			}
		}
		lns = append(lns, ln)
		log.Info("serving DNS", "addr", ln.Addr(), "transport", "udp+tcp")
	}
	var cookieSecret []byte
	if cfg.CookieSecret != "" {
		if cookieSecret, err = hex.DecodeString(cfg.CookieSecret); err != nil || len(cookieSecret) != 16 {
			log.Error("cookie_secret must be 32 hex digits (16 bytes)")
			return 2
		}
	}
	router.Loc, router.Health = locator, health
	metrics := resolver.NewMetrics(reg)
	var tap *resolver.Dnstap
	if cfg.Dnstap.Enabled() {
		if tap, err = resolver.NewDnstap(cfg.Dnstap, cfg.ServerID, "geodns "+version, metrics); err != nil {
			log.Error("cannot start the dnstap query log", "error", err)
			return 2
		}
		defer tap.Close() // after the listeners close (deferred later): what was queued is written
		log.Info("dnstap query log", "socket", cfg.Dnstap.Socket, "file", cfg.Dnstap.File)
	}
	var queryLog *resolver.QueryLog
	if cfg.QueryLog.Enabled() {
		if queryLog, err = resolver.NewQueryLog(cfg.QueryLog, metrics); err != nil {
			log.Error("cannot start the query log", "error", err)
			return 2
		}
		defer queryLog.Close() // after the listeners close (deferred later)
		log.Info("sampled JSON query log", "path", cfg.QueryLog.Path, "sample", cfg.QueryLog.Sample, "max_per_second", cfg.QueryLog.MaxPerSecond)
	}
	// DNSSEC (docs/dnssec.md): keys for the signed zones, before the first answer.
	var clusterOfKeys *cluster.Cluster
	if clus != nil {
		clusterOfKeys = clus.cluster
	}
	keys, keysWhere, err := cfg.keyStore(clusterOfKeys, true)
	if err != nil {
		log.Error("dnssec", "error", err)
		return 2
	}
	signer := startDNSSEC(ctx, &cfg, keys, keysWhere, dnssec.Options{Registerer: reg}, log)
	if err := signer.Sync(dnssecZones(set.Load())); err != nil {
		log.Error("dnssec: zones not signed", "error", err)
	}
	h := resolver.NewHandler(&set, router, resolver.Config{
		ServerID: cfg.ServerID, Version: cfg.VersionBind, MaxUDPSize: cfg.MaxUDPSize,
		Metrics: metrics, RRL: cfg.RRL, Registerer: reg, CookieSecret: cookieSecret,
		CacheBytes: cfg.AnswerCache, Dnstap: tap, QueryLog: queryLog, Signer: resolver.NewSigner(signer),
	}, log)

	// Zone transfers and TSIG wrap the handler (docs/transfers.md).
	tsigKeys, err := xfr.ParseKeys(cfg.TSIGKeys)
	if err != nil {
		log.Error("config", "error", err)
		return 2
	}
	xfrOpts := xfr.Options{Zones: &set, Inner: h, Keys: tsigKeys, StateDir: cfg.StateDir, Catalog: cfg.Catalog, Signer: signer, Registerer: reg, Log: log, MaxUDPSize: cfg.MaxUDPSize}
	for _, l := range cfg.Listen {
		// NOTIFY leaves from the address secondaries know us by.
		if ap, err := netip.ParseAddrPort(l); err == nil && !ap.Addr().IsUnspecified() {
			xfrOpts.NotifyFrom = append(xfrOpts.NotifyFrom, ap.Addr().Unmap())
		}
	}
	if clus != nil {
		xfrOpts.Serials = clus.serials // exported serials too: one per exported content
	}
	transfers, err := xfr.New(xfrOpts)
	if err != nil {
		log.Error("config: catalog", "error", err)
		return 2
	}
	onChange := watcher.OnChange
	watcher.OnChange = func(s *zones.Set) {
		onChange(s)
		metrics.Prune(s) // the series of zones, services and sites gone
		// Keys first: the transfers of a newly signed zone are signed.
		if err := signer.Sync(dnssecZones(s)); err != nil {
			log.Error("dnssec: zones not signed", "error", err)
		}
		transfers.Changed(s)
	}
	metrics.Prune(set.Load()) // what the first scan loaded, for the next to compare
	if clus != nil {
		// Not a SIGHUP: that would also remove zones whose file is gone.
		clus.reload = func() { go watcher.ReloadAll() }
		clus.sources(&set, locator)
		onChange := watcher.OnChange
		watcher.OnChange = func(s *zones.Set) { onChange(s); clus.reports.Changed() }
	}

	var dnsAddrs []string
	for _, ln := range lns {
		dnsAddrs = append(dnsAddrs, ln.Addr())
	}
	// Explains run the same handler, but are not traffic: its uncounted view.
	apiServer := &api.Server{Zones: &set, Health: health, Operator: operator, Router: router, Resolver: h.Uncounted(), Gatherer: reg,
		Token: token, Version: version, DNS: dnsAddrs, Log: log}
	statusPage := &ui.Server{Zones: &set, Router: router, Loc: locator, Health: health, Operator: operator, Log: log}
	apiServer.UI = statusPage.Handler()
	operator.Watch(statusPage.OperatorChanged)
	var apiLn net.Listener
	if cfg.HTTP != "off" {
		apiLn, err = net.Listen("tcp", cfg.HTTP)
		if err != nil {
			log.Error("cannot listen", "addr", cfg.HTTP, "error", err)
			return 1
		}
		log.Info("serving HTTP API and metrics", "addr", apiLn.Addr().String(), "write_calls", token != "")
	}
	if clus != nil {
		apiServer.Cluster, apiServer.Votes = clus.reports, health
		if apiLn != nil {
			clus.cluster.SetAddress(apiLn.Addr().String())
		}
	}

	errc := make(chan error, 8)
	go func() { errc <- watcher.Run(ctx, hup) }()
	go func() { errc <- locator.Run(ctx) }()
	go func() { errc <- health.Run(ctx) }()
	go func() { errc <- router.Run(ctx, set.Load) }()
	go func() { errc <- transfers.Run(ctx) }()
	running := 6
	if clus != nil {
		defer clus.cluster.Close() // after every part that uses the client has returned
		go func() { errc <- clus.run(ctx) }()
		running++
	}
	if apiLn != nil {
		go func() { errc <- apiServer.Serve(ctx, apiLn) }()
		go func() { errc <- statusPage.Run(ctx) }() // the page's map sample and timeline
		running += 2
	}
	serveOpts := resolver.ServeOptions{MaxTCPConns: cfg.MaxTCPConns, ReaderProcs: procs.AddReaderProcs} // a P per UDP reader and TCP loop (knobs.go)
	go func() { errc <- resolver.Serve(ctx, transfers, serveOpts, lns...) }()
	err = <-errc
	if ctx.Err() != nil {
		log.Info("stopping", "cause", context.Cause(ctx)) // the signal's name
	}
	stop()
	if err != nil {
		log.Error("stopping", "error", err)
		return 1
	}
	for range running - 1 {
		<-errc
	}
	log.Info("stopped")
	return 0
}

// newLocator opens the GeoIP databases. Without any, the server still runs:
// every client gets each service's default site order, and the log says so.
func newLocator(files []string, log *slog.Logger) *geo.Locator {
	l, err := geo.NewLocator(files, log)
	if err != nil {
		log.Error("GeoIP databases not all loaded; retrying when the files change", "error", err)
	}
	if len(l.Databases()) == 0 {
		log.Warn("no GeoIP database: every client gets each service's default site order (--geoip FILE)")
	}
	return l
}

func newLogger(format string, w io.Writer) (*slog.Logger, error) {
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// check validates zone files the way serve loads them and prints every
// problem as file:line:col: message.
func check(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("zones", "zones", "directory of <zone>.yaml files (default: the config's zones, else zones)")
	configFile := fs.String("config", "", "server config file: checked too, and the zones against it (zones, zone_* keys, probe_allow)")
	var importDirs listFlag
	fs.Var(&importDirs, "import-dir", "directory zone files may import from besides their own (zone_import_dirs); repeatable")
	strict := fs.Bool("strict", false, "treat warnings (occluded data, MX/SRV targets without addresses, ...) as errors")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	limits := zones.Limits{ImportDirs: importDirs}
	var allow []netip.Prefix
	if *configFile != "" {
		cfg := defaultConfig()
		if err := cfg.load(*configFile); err != nil {
			fmt.Fprintln(stderr, err)
			fmt.Fprintf(stderr, "geodns check: %s has errors\n", *configFile)
			return 1
		}
		zonesSet := false
		fs.Visit(func(f *flag.Flag) { zonesSet = zonesSet || f.Name == "zones" })
		if !zonesSet {
			*dir = cfg.Zones
		}
		limits.ImportDirs = append(cfg.ZoneImportDirs, importDirs...)
		limits.MaxFileSize = cfg.ZoneMaxFileSize
		limits.MaxRecords = cfg.ZoneMaxRecords
		allow, _ = cfg.probeAllow() // load has checked each prefix
		// serve runs without a database it cannot open (every client then
		// gets the default order): check says so first, at its line.
		geoBad := false
		for i, path := range cfg.GeoIP {
			if _, err := geo.NewLocator([]string{path}, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
				fmt.Fprintf(stderr, "%s: %v\n", itemPos(*configFile, "geoip", i), err) // "geoip PATH: open ..."
				geoBad = true
			}
		}
		if geoBad {
			fmt.Fprintf(stderr, "geodns check: %s has errors\n", *configFile)
			return 1
		}
		fmt.Fprintf(stdout, "%s: ok\n", *configFile)
	}
	files := fs.Args()
	bad, clashed := 0, 0
	if len(files) == 0 {
		byZone, err := zones.ZoneFiles(*dir)
		if byZone == nil {
			fmt.Fprintf(stderr, "geodns check: %v\n", err)
			return 1
		}
		for _, e := range zones.Errors(err) { // two files for one zone
			fmt.Fprintln(stderr, e.Error())
		}
		for _, paths := range byZone {
			if len(paths) == 1 {
				files = append(files, paths[0])
			} else {
				clashed += len(paths) // neither loads
			}
		}
	}
	sort.Strings(files)
	for _, f := range files {
		z, err := limits.Load(f, nil)
		if err != nil {
			bad++
			for _, e := range zones.Errors(err) {
				fmt.Fprintln(stderr, e.Error())
			}
			continue
		}
		if errs := forbiddenProbes(f, z, allow, *configFile); len(errs) > 0 {
			bad++
			for _, e := range errs {
				fmt.Fprintln(stderr, e)
			}
			continue
		}
		// A warning never stops a load; --strict makes it stop the check.
		for _, w := range z.Warnings {
			fmt.Fprintf(stderr, "warning: %s\n", w.Error())
		}
		if *strict && len(z.Warnings) > 0 {
			bad++
			continue
		}
		signed := ""
		if at, set, ok := z.SignaturesExpire(); ok {
			signed = fmt.Sprintf(", pre-signed (signatures valid until %s, %s first)", at.UTC().Format(time.RFC3339), set)
		} else if z.Presigned() {
			signed = ", pre-signed (no signatures)"
		}
		fmt.Fprintf(stdout, "%s: ok: zone %s, %d records, serial %d%s\n", f, z.Origin, z.Len(), z.Serial, signed)
	}
	if len(files)+clashed == 0 {
		fmt.Fprintf(stderr, "geodns check: no <zone>.yaml files in %s\n", *dir)
		return 1
	}
	if bad += clashed; bad > 0 {
		fmt.Fprintf(stderr, "geodns check: %d of %d zone files have errors\n", bad, len(files)+clashed)
		return 1
	}
	return 0
}

// forbiddenProbes lists the health checks of zone z (from file) whose
// targets probe_allow forbids: serve would never probe them, so their
// endpoints would be down for good ("target not allowed").
func forbiddenProbes(file string, z *zones.Zone, allow []netip.Prefix, configFile string) []string {
	if len(allow) == 0 {
		return nil
	}
	var out []string
	names := z.ServiceNames()
	owners := make([]string, 0, len(names))
	for name := range names {
		owners = append(owners, name)
	}
	sort.Strings(owners)
	// A service at several names is told once, with all of them.
	var svcs []*zones.Service
	at := map[*zones.Service][]string{}
	for _, name := range owners {
		svc := names[name]
		if at[svc] == nil {
			svcs = append(svcs, svc)
		}
		at[svc] = append(at[svc], name)
	}
	for _, svc := range svcs {
		for _, e := range svc.Endpoints {
			if e.Probe == nil || e.Probe.Target == "" {
				continue // never probed, or a static check
			}
			ap, err := netip.ParseAddrPort(e.Probe.Target)
			if err == nil && slices.ContainsFunc(allow, func(p netip.Prefix) bool { return p.Contains(ap.Addr().Unmap()) }) {
				continue
			}
			out = append(out, fmt.Sprintf("%s: service %q (at %s), site %s, endpoint %s: check %q probes %s, which probe_allow in %s forbids: the endpoint would always be down (give it a target: inside probe_allow, or widen probe_allow)",
				file, svc.Name, strings.Join(at[svc], ", "), e.Site, e.ID, e.Check, e.Probe.Target, configFile))
		}
	}
	return out
}

func importCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	origin := fs.String("origin", "", "the zone's name, e.g. example.com.")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *origin == "" || fs.NArg() != 1 {
		fmt.Fprint(stderr, "usage: geodns import --origin ZONE FILE.zone\n")
		return 2
	}
	// A file that cannot be read is that one error, not also the SOA the
	// zone built around it then lacks.
	if f, err := os.Open(fs.Arg(0)); err != nil {
		fmt.Fprintf(stderr, "geodns import: %v\n", err)
		return 1
	} else {
		f.Close()
	}
	// Loaded as a zone importing it would be: the same errors as `geodns
	// check`, and its warnings, on stderr.
	out, warnings, err := zones.Limits{}.ImportFile(fs.Arg(0), *origin)
	if err != nil {
		for _, e := range zones.Errors(err) {
			fmt.Fprintf(stderr, "geodns import: %s\n", e.Error())
		}
		return 1
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w.Error())
	}
	if _, err := stdout.Write(out); err != nil && !errors.Is(err, os.ErrClosed) {
		return 1
	}
	return 0
}
