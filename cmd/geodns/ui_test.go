package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// uiZone is three sites probed over HTTP at loopback backends.
func uiZone(east, west, eu string) string {
	return fmt.Sprintf(`soa: {ns: ns1.example.com., mbox: hostmaster.example.com.}
records:
  "@": {NS: [ns1.example.com.]}
  www: {service: web}
sites:
  us-east: {lat: 39.04, lon: -77.49}
  us-west: {lat: 37.34, lon: -121.89}
  eu: {lat: 50.11, lon: 8.68}
checks:
  web: {type: http, port: 8080, path: /healthz, expect_body: ok}
services:
  web:
    ttl: 30
    return_ramp: 0s   # back at once: ramps have their own tests
    endpoints:
      - {site: us-east, address: %s, check: web, target: %q}
      - {site: us-west, address: %s, check: web, target: %q}
      - {site: eu, address: 203.0.113.10, check: web, target: %q}
`, eastAddr, east, westAddr, west, eu)
}

// pageState is what the test reads of the status page's DOM.
type pageState struct {
	Loaded     bool              `json:"loaded"`
	Markers    map[string]string `json:"markers"`     // site -> data-state
	MarkerFill map[string]string `json:"marker_fill"` // site -> computed fill
	Cell       string            `json:"cell"`        // the New York cell's data-site
	CellFill   string            `json:"cell_fill"`   // its computed fill
	Cells      map[string]int    `json:"cells"`       // site -> shaded cells
	SiteFill   map[string]string `json:"site_fill"`   // site -> its legend colour
	Mode       string            `json:"mode"`
	Disabled   bool              `json:"disabled"` // the drain buttons
	Msg        string            `json:"msg"`
	Timeline   string            `json:"timeline"`
	EastWhy    string            `json:"east_why"` // the sites table's why column for us-east
	Stored     string            `json:"stored"`   // what outlives the tab: localStorage and cookies
}

// New York's grid cell (ui.CellDeg = 3): row from 90°N, column from 180°W.
var nyRow, nyCol = int(math.Floor((90 - 40.71) / 3)), int(math.Floor((180 - 74.01) / 3))

var readPage = fmt.Sprintf(`(() => {
  const q = (s) => document.querySelector(s), fill = (e) => e ? getComputedStyle(e).fill : "";
  const out = {loaded: !!document.body.dataset.loaded, markers: {}, marker_fill: {}, cells: {}, site_fill: {}};
  for (const g of document.querySelectorAll("#markers .marker")) {
    out.markers[g.dataset.site] = g.dataset.state;
    out.marker_fill[g.dataset.site] = fill(g.querySelector("circle"));
  }
  for (const r of document.querySelectorAll("#shade rect")) out.cells[r.dataset.site] = (out.cells[r.dataset.site] || 0) + 1;
  for (const s of document.querySelectorAll("#legend [data-site] .swatch")) out.site_fill[s.parentNode.dataset.site] = getComputedStyle(s).backgroundColor;
  const c = q('#shade rect[data-r="%d"][data-c="%d"]');
  out.cell = c ? c.dataset.site : "";
  out.cell_fill = fill(c);
  out.mode = q("#mode").textContent;
  out.disabled = [...document.querySelectorAll('button[data-action="drain"]')].every((b) => b.disabled);
  out.msg = q("#write-msg").textContent;
  out.timeline = q("#timeline").textContent;
  const east = q('#sites tr[data-site="us-east"]');
  out.east_why = east ? east.cells[6].textContent : "";
  out.stored = JSON.stringify(localStorage) + document.cookie;
  return out;
})()`, nyRow, nyCol)

// startChromium starts headless Chromium for the test; cleanup cancels
// it and kills its process by PID should it linger.
func startChromium(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath("/usr/bin/chromium"), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1200))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	require.NoError(t, chromedp.Do(ctx)) // starts the browser
	pid := chromedp.FromContext(ctx).Browser.Process().Pid
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		if syscall.Kill(pid, 0) == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return ctx
}

// shotDir is where screenshots go: $GEODNS_SCREENSHOTS (make docs uses
// docs/images), else the test's temporary directory.
func shotDir(t *testing.T) string {
	if d := os.Getenv("GEODNS_SCREENSHOTS"); d != "" {
		require.NoError(t, os.MkdirAll(d, 0o755))
		return d
	}
	return t.TempDir()
}

// TestStatusPageInBrowser loads /ui/ in headless Chromium against a live
// server with real HTTP backends: all up, then us-east's backend killed
// (its marker turns red and the east coast is shaded for another site),
// then us-east back and drained from the page with the token (the DNS
// answers of east-coast clients move).
func TestStatusPageInBrowser(t *testing.T) {
	files := realDB(t)
	east := startBackend(t, freeLoopback(t, "127.0.0.2"))
	west := serveOn(t, "127.0.0.3", http.HandlerFunc(okBackend))
	eu := serveOn(t, "127.0.0.4", http.HandlerFunc(okBackend))
	zdir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(zdir, "example.com.yaml"), []byte(uiZone(east.addr, west, eu)), 0o644))
	httpAddr := freeLoopback(t, "127.0.0.1")
	server, _ := startGeodns(t, zdir, "example.com.", "--geoip", files[0], "--geoip", files[1], "--state-dir", t.TempDir(),
		"--http", httpAddr, "--api-token-file", tokenFile(t, testToken))
	base := "http://" + httpAddr
	require.Eventually(t, func() bool { code, _ := call(t, "GET", base+"/readyz", ""); return code == 200 }, 10*time.Second, 50*time.Millisecond)
	c := &dns.Client{Timeout: time.Second}
	got, _ := answers(t, c, server, eastClients)
	require.True(t, all(got, eastAddr), "%v", got)

	ctx := startChromium(t)
	dir := shotDir(t)
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, png, 0o644))
		t.Logf("screenshot %s (%d bytes)", p, len(png))
	}
	var st pageState
	read := func() pageState {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](readPage))
		require.NoError(t, err)
		return s
	}
	// until re-reads the page (it polls every 2 s) until ok holds.
	until := func(what string, ok func(pageState) bool) {
		t.Helper()
		require.Eventually(t, func() bool { st = read(); return ok(st) }, 20*time.Second, 100*time.Millisecond,
			"page never showed %s; last: %+v", what, st)
	}
	const (
		green, red, purple = "rgb(26, 155, 73)", "rgb(217, 45, 32)", "rgb(122, 90, 248)"
	)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/ui/")))
	until("every site up with the east coast shaded for us-east", func(s pageState) bool {
		return s.Loaded && s.Markers["us-east"] == "up" && s.Markers["us-west"] == "up" && s.Markers["eu"] == "up" && s.Cell == "us-east"
	})
	t.Logf("all up: markers %v, fills %v, New York cell (%d,%d) %s %s, shaded cells %v", st.Markers, st.MarkerFill, nyRow, nyCol, st.Cell, st.CellFill, st.Cells)
	require.Equal(t, green, st.MarkerFill["us-east"])
	require.Equal(t, st.SiteFill["us-east"], st.CellFill, "the cell is shaded in us-east's colour")
	for _, site := range []string{"us-east", "us-west", "eu"} {
		require.Greater(t, st.Cells[site], 20, "%s has a region", site)
	}
	require.Equal(t, "read-only", st.Mode)
	require.True(t, st.Disabled, "without a token the drain buttons are disabled")
	upCells := st.Cells
	shot("status-all-up.png")

	// The east datacenter dies.
	east.kill()
	until("us-east down and its region sent elsewhere", func(s pageState) bool {
		return s.Markers["us-east"] == "down" && s.Cell == "us-west" && s.Cells["us-east"] == 0 &&
			strings.Contains(s.Timeline, "site us-east of service web (example.com.) down") && strings.Contains(s.EastWhy, "failing")
	})
	t.Logf("us-east killed: markers %v, fills %v, New York cell %s %s, shaded cells %v", st.Markers, st.MarkerFill, st.Cell, st.CellFill, st.Cells)
	require.Equal(t, red, st.MarkerFill["us-east"])
	require.Equal(t, st.SiteFill["us-west"], st.CellFill)
	require.NotEqual(t, st.SiteFill["us-east"], st.CellFill)
	require.Greater(t, st.Cells["us-west"], upCells["us-west"], "us-west took regions")
	require.Contains(t, st.Timeline, "check web of 192.0.2.10 (us-east) down")
	got, _ = answers(t, c, server, eastClients)
	require.True(t, all(got, westAddr), "east clients are answered by us-west: %v", got)
	shot("status-us-east-killed.png")

	// East comes back; then the operator drains it from the page.
	east.start()
	until("us-east up again", func(s pageState) bool { return s.Markers["us-east"] == "up" && s.Cell == "us-east" })
	got, _ = answers(t, c, server, eastClients)
	require.True(t, all(got, eastAddr), "%v", got)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("token"), testToken),
		chromedp.Click(chromedp.ID("use-token")),
		chromedp.SendKeys(chromedp.ID("reason"), "kernel upgrade")))
	until("writes enabled", func(s pageState) bool { return s.Mode == "writes enabled" && !s.Disabled })
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#sites tr[data-site="us-east"] button[data-action="drain"]`))))
	until("the drain done", func(s pageState) bool { return strings.Contains(s.Msg, "drain: done") })
	// The API answers a drain once queries route by it: the answers move now.
	got, _ = answers(t, c, server, eastClients)
	require.True(t, all(got, westAddr), "after the drain from the page, east clients get us-west: %v", got)
	until("us-east drained and its region sent elsewhere", func(s pageState) bool {
		return s.Markers["us-east"] == "drained" && s.Cell == "us-west" && s.Cells["us-east"] == 0 &&
			strings.Contains(s.Timeline, "site us-east: drained") && strings.HasPrefix(s.EastWhy, "drained")
	})
	require.Regexp(t, `^drained by POST /api/v1/sites/us-east/drain from 127\.0\.0\.1:\d+ at \S+: kernel upgrade$`, st.EastWhy,
		"the API's reason, with the one typed in the page")
	t.Logf("drained from the page: markers %v, fills %v, New York cell %s %s, shaded cells %v", st.Markers, st.MarkerFill, st.Cell, st.CellFill, st.Cells)
	require.Equal(t, purple, st.MarkerFill["us-east"])
	require.Equal(t, st.SiteFill["us-west"], st.CellFill)
	require.Equal(t, "{}", st.Stored, "the token is kept in the tab only, never in localStorage or a cookie")
	shot("status-us-east-drained.png")
}
