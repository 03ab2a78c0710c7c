package main

import (
	"fmt"

	"github.com/geodns/geodns/resolver"
	"github.com/geodns/geodns/xfr"
	"net/netip"
	"os"
	"strings"
	"time"

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
	ZoneMissingGrace time.Duration `yaml:"zone_missing_grace"`
	// Zone transfers (docs/transfers.md): TSIG keys by name, and the
	// catalog zone (default none).
	TSIGKeys map[string]xfr.KeyConfig `yaml:"tsig_keys"`
	Catalog  xfr.Catalog              `yaml:"catalog"`
	// Query log (dnstap): {socket: PATH} or {file: PATH}; default off.
	Dnstap resolver.DnstapConfig `yaml:"dnstap"`
}

// token returns the API token: from the token file if one is named, else
// GEODNS_API_TOKEN, else api_token.
func (c *config) token() (string, error) {
	if c.APITokenFile != "" {
		b, err := os.ReadFile(c.APITokenFile)
		if err != nil {
			return "", fmt.Errorf("api token file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
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

func (c *config) load(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true) // a misspelt key is an error, not a silent default
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if c.MaxUDPSize != 0 && c.MaxUDPSize < 512 {
		return fmt.Errorf("%s: max_udp_size %d is below 512", path, c.MaxUDPSize)
	}
	return nil
}
