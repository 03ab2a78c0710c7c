package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/geodns/geodns/api"
	"github.com/miekg/dns"
)

const ctlUsage = `usage: geodns ctl [--api URL] [--token-file FILE] COMMAND [ARGS]
  status                                       zones, services, sites and endpoints with state and reason, overrides, dials
  drain|undrain|force-up|force-down SITE       [--reason TEXT] every site of that name
  drain|undrain|force-up|force-down --endpoint ADDRESS|CNAME [--reason TEXT]
  dial SERVICE SITE PERCENT|clear              [--reason TEXT] the share of its own clients a site keeps
  explain NAME [TYPE] --client IP[/LEN]        how the server answers NAME for a client now
The API is --api, else $GEODNS_API, else http://127.0.0.1:8053. Write calls
need the token: $GEODNS_API_TOKEN, or --token-file FILE.
`

// defaultAPI is the admin API of the commands that talk to a node
// (ctl, cluster status) without --api: $GEODNS_API, else the serve default.
func defaultAPI() string {
	if u := os.Getenv("GEODNS_API"); u != "" {
		return u
	}
	return "http://127.0.0.1:8053"
}

// ctl talks to a running server's admin API: the operator's interface
// instead of curl and JSON.
func ctl(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, ctlUsage) }
	apiURL := fs.String("api", defaultAPI(), "the admin API's URL")
	tokenFile := fs.String("token-file", "", "a file holding the API token (default $GEODNS_API_TOKEN)")
	reason := fs.String("reason", "", "why: shown in status and explain beside the override or dial")
	endpoint := fs.String("endpoint", "", "an endpoint (address or CNAME) instead of a site")
	client := fs.String("client", "", "explain: the client address or network")
	// Flags may come after the command and its arguments too.
	var pos []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(pos) == 0 {
		fmt.Fprint(stderr, ctlUsage)
		return 2
	}
	c := &ctlClient{base: strings.TrimRight(*apiURL, "/"), tokenFile: *tokenFile}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "geodns ctl: %v\n", err)
		return 1
	}
	usage := func(msg string) int {
		fmt.Fprintf(stderr, "geodns ctl: %s\n%s", msg, ctlUsage)
		return 2
	}
	switch cmd := pos[0]; cmd {
	case "status":
		if len(pos) != 1 {
			return usage("status takes no arguments")
		}
		var st api.Status
		if err := c.do("GET", "/api/v1/status", nil, false, &st); err != nil {
			return fail(err)
		}
		printStatus(stdout, st)
		return 0
	case "drain", "undrain", "force-up", "force-down":
		kind, name := "sites", ""
		switch {
		case *endpoint != "" && len(pos) == 1:
			kind, name = "endpoints", *endpoint
		case *endpoint == "" && len(pos) == 2:
			name = pos[1]
		default:
			return usage(cmd + " takes one site, or --endpoint ADDRESS")
		}
		var out api.OverrideStatus
		if err := c.do("POST", "/api/v1/"+kind+"/"+url.PathEscape(name)+"/"+cmd, api.OverrideRequest{Reason: *reason}, true, &out); err != nil {
			return fail(err)
		}
		if out.Override == "none" {
			fmt.Fprintf(stdout, "%s %s: undrained, no override\n", out.Kind, out.Name)
		} else {
			fmt.Fprintf(stdout, "%s %s: %s\n", out.Kind, out.Name, describeOverride(out))
		}
		return 0
	case "dial":
		if len(pos) != 4 {
			return usage("dial takes SERVICE SITE PERCENT (or clear)")
		}
		path := "/api/v1/services/" + url.PathEscape(pos[1]) + "/sites/" + url.PathEscape(pos[2]) + "/dial"
		var out api.DialStatus
		var err error
		if pos[3] == "clear" {
			err = c.do("DELETE", path, nil, true, &out)
		} else {
			pct, perr := strconv.ParseFloat(strings.TrimSuffix(pos[3], "%"), 64)
			if perr != nil {
				return usage(fmt.Sprintf("dial: %q is not a percentage", pos[3]))
			}
			err = c.do("POST", path, api.DialRequest{Dial: &pct, Reason: *reason}, true, &out)
		}
		if err != nil {
			return fail(err)
		}
		if out.Dial == nil {
			fmt.Fprintf(stdout, "service %s site %s: dial cleared (the zone file's applies)\n", out.Service, out.Site)
		} else {
			fmt.Fprintf(stdout, "service %s site %s: keeps %g%% of its clients\n", out.Service, out.Site, *out.Dial)
		}
		return 0
	case "explain":
		if len(pos) < 2 || len(pos) > 3 || *client == "" {
			return usage("explain takes NAME [TYPE] --client IP[/LEN]")
		}
		if _, err := api.ParseClient(*client); err != nil {
			return usage("--client: " + err.Error())
		}
		qtype := "A"
		if len(pos) == 3 {
			qtype = strings.ToUpper(pos[2])
			if dns.StringToType[qtype] == 0 {
				return usage(fmt.Sprintf("unknown type %q", pos[2]))
			}
		}
		var e api.Explanation
		q := url.Values{"name": {pos[1]}, "client": {*client}, "type": {qtype}}
		if err := c.do("GET", "/api/v1/explain?"+q.Encode(), nil, false, &e); err != nil {
			return fail(err)
		}
		printExplanation(stdout, e)
		if e.Zone == "" {
			fmt.Fprintf(stdout, "answer    REFUSED: %s is in none of the served zones\n", e.Name)
			return 1
		}
		return 0
	default:
		return usage(fmt.Sprintf("unknown command %q", cmd))
	}
}

// ctlClient makes API calls and turns every failure into a sentence.
type ctlClient struct {
	base, tokenFile string
}

func (c *ctlClient) token() (string, error) {
	if c.tokenFile != "" {
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return "", fmt.Errorf("--token-file: %v", err)
		}
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
		return "", fmt.Errorf("--token-file %s is empty", c.tokenFile)
	}
	if t := os.Getenv("GEODNS_API_TOKEN"); t != "" {
		return t, nil
	}
	return "", errors.New("no API token: set GEODNS_API_TOKEN or give --token-file FILE (the server's --api-token-file)")
}

// do calls method path with body as JSON (nil: none), with the token if
// write, and decodes a 200 answer into out.
func (c *ctlClient) do(method, path string, body any, write bool, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("--api %s: %v", c.base, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if write {
		t, err := c.token()
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+t)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			err = op.Err
		}
		return fmt.Errorf("cannot reach the API at %s: %v (is geodns serving there? see --api)", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %v", method, c.base+path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e api.Error
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			return fmt.Errorf("%s %s: %s (is %s a geodns API?)", method, c.base+path, resp.Status, c.base)
		}
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("the API refused the call (%s): %s", resp.Status, e.Error)
		}
		return errors.New(e.Error)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not the API's JSON: %v", method, c.base+path, err)
	}
	return nil
}

func describeOverride(o api.OverrideStatus) string {
	verb := map[string]string{"drain": "drained", "up": "forced up", "down": "forced down"}[o.Override]
	s := verb
	if !o.At.IsZero() {
		s += " at " + o.At.UTC().Format(time.RFC3339)
	}
	if o.Reason != "" {
		s += ": " + o.Reason
	}
	return s
}

// printStatus prints a status as tables: zones, sites per service with
// their state and why, endpoints, overrides, dials.
func printStatus(w io.Writer, st api.Status) {
	ready := "ready"
	if !st.Ready {
		ready = "NOT READY (first health checks not done)"
	}
	fmt.Fprintf(w, "geodns %s (%s), %s, DNS on %s\n", st.Version, st.Go, ready, orDash(strings.Join(st.DNS, " ")))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cols ...string) { fmt.Fprintln(tw, strings.Join(cols, "\t")) }
	section := func(title string) {
		tw.Flush()
		fmt.Fprintf(w, "\n%s\n", title)
	}
	pct := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) + "%" }

	section("ZONES")
	row("ZONE", "SERIAL", "RECORDS", "FILE")
	for _, z := range st.Zones {
		row(z.Origin, strconv.FormatUint(uint64(z.Serial), 10), strconv.Itoa(z.Records), z.File)
	}
	section("SITES")
	row("SERVICE", "SITE", "STATE", "KEEPS", "DIAL", "RAMP", "REASON")
	for _, svc := range st.Services {
		for _, s := range svc.Sites {
			row(svc.Name, s.Name, s.State, pct(s.Keeps), pct(s.Dial), pct(s.Ramp), s.Reason)
		}
	}
	section("ENDPOINTS")
	row("SERVICE", "SITE", "ENDPOINT", "STATE", "CHECK", "REASON")
	for _, svc := range st.Services {
		for _, s := range svc.Sites {
			for _, ep := range s.Endpoints {
				check := orDash(ep.Check)
				if ep.Target != "" {
					check += " " + ep.Target
				}
				row(svc.Name, s.Name, ep.ID, ep.State, check, ep.Reason)
			}
		}
	}
	section("OVERRIDES")
	row("KIND", "NAME", "OVERRIDE", "AT", "FROM", "REASON")
	overrides := append(st.Overrides.Sites, st.Overrides.Endpoints...)
	for _, o := range overrides {
		row(o.Kind, o.Name, o.Override, at(o.At), orDash(o.From), orDash(o.Reason))
	}
	if len(overrides) == 0 {
		row("(none)")
	}
	section("DIALS (set through the API)")
	row("SERVICE", "SITE", "DIAL", "AT", "FROM", "REASON")
	for _, d := range st.Overrides.Dials {
		row(d.Service, d.Site, pct(*d.Dial), at(d.At), orDash(d.From), orDash(d.Reason))
	}
	if len(st.Overrides.Dials) == 0 {
		row("(none)")
	}
	tw.Flush()
}

func at(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
