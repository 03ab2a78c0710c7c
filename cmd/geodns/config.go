package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/geodns/geodns/cluster"
	suggestpkg "github.com/geodns/geodns/internal/suggest"
	"github.com/geodns/geodns/internal/units"
	"github.com/geodns/geodns/resolver"
	"github.com/geodns/geodns/xfr"
	"github.com/geodns/geodns/zones"
	"gopkg.in/yaml.v3"
)

// config is the server configuration file; flags override it.
type config struct {
	Zones        string             `yaml:"zones"`               // zone directory; default "zones"
	Listen       []string           `yaml:"listen"`              // DNS addresses; default 127.0.0.1:5353
	ServerID     string             `yaml:"server_id"`           // NSID and id.server; default off
	VersionBind  string             `yaml:"version_bind"`        // version.bind answer; default off
	MaxUDPSize   uint16             `yaml:"max_udp_size"`        // UDP response cap; default 1232
	MaxTCPConns  int                `yaml:"max_tcp_connections"` // concurrent TCP clients per listener; default 1000
	RRL          resolver.RRLConfig `yaml:"rrl"`                 // response rate limiting; default off
	AnswerCache  int64              `yaml:"answer_cache_bytes"`  // packed-response cache budget; default 64 MiB
	CookieSecret string             `yaml:"cookie_secret"`       // 32 hex digits shared by an anycast set; default random
	LogFormat    string             `yaml:"log_format"`          // text or json; default text
	GeoIP        []string           `yaml:"geoip"`               // GeoIP database files; default none
	StateDir     string             `yaml:"state_dir"`           // health state and overrides; default "" (not kept)
	ProbeAllow   []string           `yaml:"probe_allow"`         // CIDRs health checks may connect to; default any
	HTTP         string             `yaml:"http"`                // admin API and metrics; default 127.0.0.1:8053, "off" to disable
	APIToken     string             `yaml:"api_token"`           // bearer token for write calls; default none (refused)
	APITokenFile string             `yaml:"api_token_file"`
	// Zone file safety (zones.Limits): directories besides zones that zone
	// files and import: targets may be in or link into (default none); the
	// size cap of each file read, in bytes (default 1 GiB); how long a zone
	// whose file is gone keeps serving (default 0: until SIGHUP).
	ZoneImportDirs   []string      `yaml:"zone_import_dirs"`
	ZoneMaxFileSize  int64         `yaml:"zone_max_file_size"`
	ZoneMaxRecords   int           `yaml:"zone_max_records"`
	ZoneMissingGrace time.Duration `yaml:"zone_missing_grace"`
	// Zone transfers (docs/transfers.md): TSIG keys by name, and the
	// catalog zone (default none).
	TSIGKeys map[string]xfr.KeyConfig `yaml:"tsig_keys"`
	Catalog  xfr.Catalog              `yaml:"catalog"`
	// Query log (dnstap): {socket: PATH} or {file: PATH}; default off.
	Dnstap resolver.DnstapConfig `yaml:"dnstap"`
	// DNSSEC signing of the zones with a dnssec: key (docs/dnssec.md).
	DNSSEC dnssecConfig `yaml:"dnssec"`
	// Sampled JSON query log: {path: FILE|-, sample: 0.01, max_per_second: 100}; default off.
	QueryLog resolver.QueryLogConfig `yaml:"query_log"`
	// An NS set on etcd (docs/cluster.md): {etcd: [URL...], node, region,
	// prefix, tls: {ca, cert, key}}; default none (a single node).
	Cluster cluster.Config `yaml:"cluster"`
}

// token returns the API token: from the token file if one is named, else
// GEODNS_API_TOKEN, else api_token. A named file that is empty is an
// error, for check and serve alike.
func (c *config) token() (string, error) {
	if c.APITokenFile != "" {
		b, err := os.ReadFile(c.APITokenFile)
		if err != nil {
			return "", fmt.Errorf("api token file: %w", err)
		}
		t := strings.TrimSpace(string(b))
		if t == "" {
			// Configured, yet no token: the API would run without write
			// calls, and say so only at INFO.
			return "", fmt.Errorf("api token file %s is empty: write calls would be disabled", c.APITokenFile)
		}
		return t, nil
	}
	if t := os.Getenv("GEODNS_API_TOKEN"); t != "" {
		return t, nil
	}
	return c.APIToken, nil
}

// probeAllow parses probe_allow.
func (c *config) probeAllow() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range c.ProbeAllow {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("probe_allow: %q is not a CIDR prefix", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func defaultConfig() config {
	return config{Zones: "zones", Listen: []string{"127.0.0.1:5353"}, HTTP: "127.0.0.1:8053"}
}

// maxConfigSize caps the config file read: it is a few hundred bytes.
const maxConfigSize = 1 << 20

// load reads a config file over c. Every problem in it is reported, each
// as file:line:col: message (zones.PosError, joined), so one run of
// `geodns check --config` or serve shows them all.
func (c *config) load(path string) error {
	data, err := readConfig(path)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return zones.SyntaxError(path, data, err)
	}
	d := &configDecoder{file: path}
	if len(doc.Content) == 0 { // an empty file: all defaults
		return nil
	}
	d.decode(doc.Content[0], reflect.ValueOf(c).Elem(), "")
	d.validate(c, doc.Content[0])
	if len(d.errs) == 0 {
		return nil
	}
	sort.SliceStable(d.errs, func(i, j int) bool {
		a, b := d.errs[i].(*zones.PosError), d.errs[j].(*zones.PosError)
		return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col
	})
	return errors.Join(d.errs...)
}

// readConfig reads a regular file of at most maxConfigSize bytes.
func readConfig(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("%s: larger than %d bytes: not a geodns config file", path, maxConfigSize)
	}
	return data, nil
}

// configDecoder walks the YAML nodes into the config struct, by the yaml
// tags of its fields, collecting every error with its position.
type configDecoder struct {
	file string
	errs []error
}

func (d *configDecoder) errf(n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, &zones.PosError{File: d.file, Line: n.Line, Col: n.Column, Msg: fmt.Sprintf(format, args...)})
}

var durationType = reflect.TypeOf(time.Duration(0))

// decode sets v (a struct, string, list of strings, boolean, integer or
// duration) from n; key is the dotted key path for messages.
func (d *configDecoder) decode(n *yaml.Node, v reflect.Value, key string) {
	what := key
	if what == "" {
		what = "the config file"
	}
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		d.errf(n, "%s: YAML anchors and aliases are not allowed", what)
		return
	}
	switch {
	case v.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.errf(n, "%s: want a mapping of keys to values, got %s", what, nodeKind(n))
			return
		}
		fields := map[string]int{}
		var names []string
		for i := range v.NumField() {
			if tag := strings.Split(v.Type().Field(i).Tag.Get("yaml"), ",")[0]; tag != "" && tag != "-" {
				fields[tag] = i
				names = append(names, tag)
			}
		}
		seen := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			full := k.Value
			if key != "" {
				full = key + "." + k.Value
			}
			if k.Kind != yaml.ScalarNode {
				d.errf(k, "%s: a key must be a plain word", what)
				continue
			}
			if prev := seen[k.Value]; prev != nil {
				d.errf(k, "%s is given twice (first at line %d)", full, prev.Line)
				continue
			}
			seen[k.Value] = k
			idx, ok := fields[k.Value]
			if !ok {
				msg := fmt.Sprintf("unknown key %s", full)
				if key != "" {
					msg = fmt.Sprintf("unknown key %s in %s", k.Value, key)
				}
				if s := suggest(k.Value, names); s != "" {
					msg += fmt.Sprintf(" (did you mean %s?)", s)
				} else {
					msg += " (keys: " + strings.Join(names, ", ") + ")"
				}
				d.errf(k, "%s", msg)
				continue
			}
			d.decode(val, v.Field(idx), full)
		}
	case v.Kind() == reflect.Map && v.Type().Key().Kind() == reflect.String:
		// Keys are names the operator chooses (tsig_keys); values decode as above.
		if n.Kind != yaml.MappingNode {
			d.errf(n, "%s: want a mapping of names to values, got %s", what, nodeKind(n))
			return
		}
		m := reflect.MakeMap(v.Type())
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			name, ok := d.scalar(k, what)
			if !ok {
				continue
			}
			if m.MapIndex(reflect.ValueOf(name)).IsValid() {
				d.errf(k, "%s.%s is given twice", key, name)
				continue
			}
			elem := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, elem, key+"."+name)
			m.SetMapIndex(reflect.ValueOf(name), elem)
		}
		v.Set(m)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		items := []*yaml.Node{n}
		if n.Kind == yaml.SequenceNode {
			items = n.Content
		} else if n.Kind != yaml.ScalarNode {
			d.errf(n, "%s: want a list, got %s", what, nodeKind(n))
			return
		}
		out := reflect.MakeSlice(v.Type(), 0, len(items))
		for _, it := range items {
			if s, ok := d.scalar(it, what); ok {
				out = reflect.Append(out, reflect.ValueOf(s))
			}
		}
		v.Set(out)
	case v.Type() == durationType:
		s, ok := d.scalar(n, what)
		if !ok {
			return
		}
		dur, err := units.ParseDuration(s)
		if err != nil {
			d.errf(n, "%s: %v", what, err)
			return
		}
		v.SetInt(int64(dur))
	case v.Kind() == reflect.String:
		if s, ok := d.scalar(n, what); ok {
			v.SetString(s)
		}
	case v.Kind() == reflect.Bool:
		s, ok := d.scalar(n, what)
		if !ok {
			return
		}
		switch strings.ToLower(s) {
		case "true", "yes", "on":
			v.SetBool(true)
		case "false", "no", "off":
			v.SetBool(false)
		default:
			d.errf(n, "%s: %q is not true or false", what, s)
		}
	case v.CanInt():
		s, ok := d.scalar(n, what)
		if !ok {
			return
		}
		i, err := strconv.ParseInt(s, 0, v.Type().Bits())
		if err != nil {
			d.errf(n, "%s: %q is not a whole number", what, s)
			return
		}
		v.SetInt(i)
	case v.CanUint():
		s, ok := d.scalar(n, what)
		if !ok {
			return
		}
		u, err := strconv.ParseUint(s, 0, v.Type().Bits())
		if err != nil {
			d.errf(n, "%s: %q is not a whole number from 0 to %d", what, s, uint64(1)<<v.Type().Bits()-1)
			return
		}
		v.SetUint(u)
	case v.CanFloat():
		s, ok := d.scalar(n, what)
		if !ok {
			return
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.errf(n, "%s: %q is not a number", what, s)
			return
		}
		v.SetFloat(f)
	default:
		panic("config: no decoder for " + v.Type().String()) // a field added without one
	}
}

// scalar returns a scalar node's text; a null (key: with nothing after)
// is an error, since it is most often a value indented under the wrong key.
func (d *configDecoder) scalar(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errf(n, "%s: want a single value, got %s", what, nodeKind(n))
		return "", false
	}
	if n.Tag == "!!null" {
		d.errf(n, "%s: has no value", what)
		return "", false
	}
	return n.Value, true
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping (key: value lines)"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "an alias"
}

// validate checks the values that have a form, each at its node.
func (d *configDecoder) validate(c *config, root *yaml.Node) {
	at := func(key string) *yaml.Node { return valueNode(root, key) }
	if n := at("query_log"); n != nil {
		if err := c.QueryLog.Check(); err != nil {
			d.errf(n, "%v", err)
		}
	}
	if n := at("max_udp_size"); n != nil && c.MaxUDPSize != 0 && c.MaxUDPSize < 512 {
		d.errf(n, "max_udp_size %d is below 512", c.MaxUDPSize)
	}
	if n := at("listen"); n != nil {
		for i, a := range c.Listen {
			if err := checkAddr("listen", a); err != nil {
				d.errf(item(n, i), "%v", err)
			}
		}
	}
	if n := at("http"); n != nil && c.HTTP != "off" {
		if err := checkAddr("http", c.HTTP); err != nil {
			d.errf(n, "%v (or off)", err)
		}
	}
	if n := at("probe_allow"); n != nil {
		for i, s := range c.ProbeAllow {
			if _, err := netip.ParsePrefix(s); err != nil {
				d.errf(item(n, i), "probe_allow: %q is not a CIDR prefix, e.g. 10.0.0.0/8", s)
			}
		}
	}
	if n := at("api_token_file"); n != nil && c.APITokenFile != "" {
		// Read as serve reads it: a file that is missing, unreadable or
		// empty stops serve.
		if _, err := c.token(); err != nil {
			d.errf(n, "%v", err)
		}
	}
	if n := at("log_format"); n != nil && c.LogFormat != "text" && c.LogFormat != "json" {
		d.errf(n, "log_format: %q: want text or json", c.LogFormat)
	}
	if n := at("cookie_secret"); n != nil {
		if b, err := hex.DecodeString(c.CookieSecret); err != nil || len(b) != 16 {
			d.errf(n, "cookie_secret: want 32 hex digits (16 bytes), e.g. from `openssl rand -hex 16`")
		}
	}
	if n := at("cluster"); n != nil {
		ps := c.Cluster.Check()
		if len(ps) == 0 {
			ps = c.Cluster.CheckFiles() // serve loads them at start: check must fail where it would
		}
		for _, p := range ps {
			at := n // at the key (tls.ca: its deepest part there is)
			for k := range strings.SplitSeq(p.Key, ".") {
				v := valueNode(at, k)
				if v == nil {
					break
				}
				at = v
			}
			if p.Item >= 0 {
				at = item(at, p.Item)
			}
			d.errf(at, "%s", p.Msg)
		}
	}
	if n := at("dnssec"); n != nil && c.DNSSEC.KeySecretFile != "" {
		kn := valueNode(n, "key_secret_file")
		switch {
		case !c.Cluster.Enabled():
			d.errf(kn, "dnssec.key_secret_file: keys are shared through etcd only in an NS set (cluster:); without one they stay in key_dir")
		case c.DNSSEC.Follow:
			d.errf(valueNode(n, "follow"), "dnssec.follow: with key_secret_file every node keeps the keys in etcd and may roll them; follow is for a shared key_dir")
		default:
			if _, err := c.keySecret(); err != nil {
				d.errf(kn, "%v", err)
			}
		}
	}
	for _, k := range []string{"max_tcp_connections", "answer_cache_bytes", "zone_max_file_size", "zone_max_records"} {
		if n := at(k); n != nil && strings.HasPrefix(n.Value, "-") {
			d.errf(n, "%s: %s is negative", k, n.Value)
		}
	}
}

// valueNode returns the value of key in mapping m, or nil.
// itemPos is where the i-th value of key (or key's value, if it is not a
// list) is written in the config file at path, as file:line:col; the file
// alone when it cannot be read again.
func itemPos(path, key string, i int) string {
	data, err := readConfig(path)
	var doc yaml.Node
	if err != nil || yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return path
	}
	n := valueNode(doc.Content[0], key)
	if n == nil {
		return path
	}
	n = item(n, i)
	return fmt.Sprintf("%s:%d:%d", path, n.Line, n.Column)
}

func valueNode(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// item returns the i-th entry of a list node (or the node, for a scalar).
func item(n *yaml.Node, i int) *yaml.Node {
	if n.Kind == yaml.SequenceNode && i < len(n.Content) {
		return n.Content[i]
	}
	return n
}

// checkAddr checks an ADDR:PORT for a listener (flag or key name what),
// with the example that the usual mistake, a bare port, calls for.
func checkAddr(what, addr string) error {
	example := "127.0.0.1:5353 or [::1]:53"
	if what == "http" || what == "--http" {
		example = "127.0.0.1:8053"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		if _, perr := strconv.ParseUint(addr, 10, 16); perr == nil {
			return fmt.Errorf("%s wants ADDR:PORT, e.g. 127.0.0.1:%s", what, addr)
		}
		return fmt.Errorf("%s %q wants ADDR:PORT, e.g. %s", what, addr, example)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%s %q: port %q is not a number from 0 to 65535", what, addr, port)
	}
	if host != "" && host != "localhost" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("%s %q: %q is not an IP address (e.g. %s)", what, addr, host, example)
		}
	}
	return nil
}

// suggest returns the name closest to a misspelt key, if it is close
// enough to be the one meant.
func suggest(key string, names []string) string { return suggestpkg.Closest(key, names) }
