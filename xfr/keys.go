package xfr

import (
	"encoding/base64"
	"fmt"
	"sort"

	"github.com/miekg/dns"
)

// KeyConfig is one TSIG key of the server config (tsig_keys:).
type KeyConfig struct {
	Algorithm string `yaml:"algorithm"` // hmac-sha256 or hmac-sha512
	Secret    string `yaml:"secret"`    // base64, as tsig-keygen and keymgr print it
}

// key is a checked TSIG key.
type key struct {
	name   string // canonical
	alg    string // dns.HmacSHA256 or dns.HmacSHA512
	secret string // base64
}

// Keys are the server's TSIG keys by canonical name.
type Keys map[string]key

// ParseKeys checks the tsig_keys: of the server config.
func ParseKeys(cfg map[string]KeyConfig) (Keys, error) {
	names := make([]string, 0, len(cfg))
	for n := range cfg {
		names = append(names, n)
	}
	sort.Strings(names)
	ks := Keys{}
	for _, n := range names {
		c := cfg[n]
		if _, ok := dns.IsDomainName(n); !ok {
			return nil, fmt.Errorf("tsig_keys: %q is not a key name", n)
		}
		var alg string
		switch c.Algorithm {
		case "hmac-sha256", dns.HmacSHA256:
			alg = dns.HmacSHA256
		case "hmac-sha512", dns.HmacSHA512:
			alg = dns.HmacSHA512
		default:
			return nil, fmt.Errorf("tsig_keys: %s: algorithm %q is not hmac-sha256 or hmac-sha512", n, c.Algorithm)
		}
		b, err := base64.StdEncoding.DecodeString(c.Secret)
		if err != nil || len(b) < 16 {
			return nil, fmt.Errorf("tsig_keys: %s: secret must be base64 of at least 16 bytes", n)
		}
		name := dns.CanonicalName(n)
		ks[name] = key{name: name, alg: alg, secret: c.Secret}
	}
	return ks, nil
}
