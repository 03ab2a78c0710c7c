package main

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/geodns/geodns/internal/etcdtest"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// The shipped example configurations load under the strict parser.
func TestExampleConfigs(t *testing.T) {
	for _, f := range []string{"../../examples/docker/geodns.yaml", "../../examples/docker/geodns2.yaml", "../../examples/systemd/geodns.yaml"} {
		c := defaultConfig()
		require.NoError(t, c.load(f), f)
		_, err := c.probeAllow()
		require.NoError(t, err, f)
		require.NotEmpty(t, c.GeoIP, f)
	}
}

func TestConfigRejectsUnknownKeys(t *testing.T) {
	f := filepath.Join(t.TempDir(), "geodns.yaml")
	require.NoError(t, os.WriteFile(f, []byte("zones: z\nlisten_on: [\"127.0.0.1:53\"]\n"), 0o644))
	c := defaultConfig()
	err := c.load(f)
	require.ErrorContains(t, err, "geodns.yaml:2:1: unknown key listen_on (did you mean listen?)")
}

func TestConfigToken(t *testing.T) {
	c := defaultConfig()
	c.APIToken = "from-config"
	t.Setenv("GEODNS_API_TOKEN", "")
	tok, err := c.token()
	require.NoError(t, err)
	require.Equal(t, "from-config", tok)
	t.Setenv("GEODNS_API_TOKEN", "from-env")
	tok, _ = c.token()
	require.Equal(t, "from-env", tok, "the environment beats the config file")
	c.APITokenFile = tokenFile(t, "from-file")
	tok, _ = c.token()
	require.Equal(t, "from-file", tok, "a token file beats both")
}

func TestConfigZoneKeys(t *testing.T) {
	f := filepath.Join(t.TempDir(), "geodns.yaml")
	require.NoError(t, os.WriteFile(f, []byte("zone_import_dirs: [/srv/zones/shared]\nzone_max_file_size: 104857600\nzone_missing_grace: 10m\n"), 0o644))
	c := defaultConfig()
	require.NoError(t, c.load(f))
	require.Equal(t, []string{"/srv/zones/shared"}, c.ZoneImportDirs)
	require.Equal(t, int64(100<<20), c.ZoneMaxFileSize)
	require.Equal(t, 10*time.Minute, c.ZoneMissingGrace)
}

// Durations take days as TTLs do (internal/units); an empty file is all
// defaults.
func TestConfigUnits(t *testing.T) {
	f := filepath.Join(t.TempDir(), "geodns.yaml")
	require.NoError(t, os.WriteFile(f, []byte("zone_missing_grace: 1d\nrrl:\n  window: 1h30m\n  responses_per_second: 20\n"), 0o644))
	c := defaultConfig()
	require.NoError(t, c.load(f))
	require.Equal(t, 24*time.Hour, c.ZoneMissingGrace)
	require.Equal(t, 90*time.Minute, c.RRL.Window)
	require.Equal(t, 20, c.RRL.ResponsesPerSecond)
	require.NoError(t, os.WriteFile(f, nil, 0o644))
	c = defaultConfig()
	require.NoError(t, c.load(f))
	require.Equal(t, defaultConfig(), c)
}

// check --config checks the config, then the zones against it: a check
// whose target probe_allow forbids is an error naming the file and check.
func TestCheckAgainstConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(s), 0o644))
		return p
	}
	zone, err := filepath.Abs("../../examples/zones")
	require.NoError(t, err)
	var out, errb strings.Builder
	cfg := write("narrow.yaml", "zones: "+zone+"\nprobe_allow: [10.0.0.0/8]\n")
	require.Equal(t, 1, run([]string{"check", "--config", cfg}, &out, &errb))
	require.Contains(t, errb.String(), "example.com.yaml: service \"web\" (at api.example.com., example.com., www.example.com.), site us-east, endpoint 192.0.2.10: check \"web\" probes 127.0.0.2:8080, which probe_allow in "+cfg+" forbids")
	require.Contains(t, errb.String(), "geodns check: 1 of 1 zone files have errors")

	out.Reset()
	errb.Reset()
	cfg = write("wide.yaml", "zones: "+zone+"\nprobe_allow: [127.0.0.0/8]\n")
	require.Equal(t, 0, run([]string{"check", "--config", cfg}, &out, &errb), errb.String())
	require.Contains(t, out.String(), "example.com.yaml: ok: zone example.com.")

	out.Reset()
	errb.Reset()
	cfg = write("bad.yaml", "zones: "+zone+"\nprobe_alow: [127.0.0.0/8]\n")
	require.Equal(t, 1, run([]string{"check", "--config", cfg}, &out, &errb))
	require.Contains(t, errb.String(), cfg+":2:1: unknown key probe_alow (did you mean probe_allow?)")
}

func TestListenFlagWantsAddrPort(t *testing.T) {
	var out, errb strings.Builder
	require.Equal(t, 2, run([]string{"serve", "--listen", "5360"}, &out, &errb))
	require.Equal(t, "geodns: --listen wants ADDR:PORT, e.g. 127.0.0.1:5360\n", errb.String())
	errb.Reset()
	require.Equal(t, 2, run([]string{"serve", "--http", "8053"}, &out, &errb))
	require.Equal(t, "geodns: --http wants ADDR:PORT, e.g. 127.0.0.1:8053 (or off)\n", errb.String())
}

func TestVersionText(t *testing.T) {
	var out, errb strings.Builder
	require.Equal(t, 0, run([]string{"version"}, &out, &errb))
	require.Regexp(t, `^geodns \S+\ncommit \S+.*\ngo1\.\S+ \w+/\w+\nIP Geolocation by DB-IP`, out.String())
}

// The cluster: section as the issue shapes it, with the defaults it
// leaves.
func TestConfigCluster(t *testing.T) {
	// The TLS files are loaded (as serve does): real ones.
	certs := etcdtest.NewCerts(t, t.TempDir())
	cert, key := certs.Client("ns1")
	f := filepath.Join(t.TempDir(), "geodns.yaml")
	section := `cluster:
  etcd: [https://10.0.0.1:2379, https://10.0.0.2:2379]
  node: ns1
  region: eu
  tls: {ca: %s, cert: %s, key: %s}
`
	require.NoError(t, os.WriteFile(f, fmt.Appendf(nil, section, certs.CA, cert, key), 0o644))
	c := defaultConfig()
	require.NoError(t, c.load(f))
	require.True(t, c.Cluster.Enabled())
	require.Equal(t, []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379"}, c.Cluster.Etcd)
	require.Equal(t, "ns1", c.Cluster.Node)
	require.Equal(t, key, c.Cluster.TLS.Key)
	// Another identity's key: at the key, not at start.
	_, key2 := certs.Client("ns2")
	require.NoError(t, os.WriteFile(f, fmt.Appendf(nil, section, certs.CA, cert, key2), 0o644))
	c = defaultConfig()
	err := c.load(f)
	require.ErrorContains(t, err, fmt.Sprintf("geodns.yaml:5:%d: cluster.tls.key: %s with cert %s: tls: private key does not match public key",
		len("  tls: {ca: , cert: , key: ")+len(certs.CA)+len(cert)+1, key2, cert))
	require.Empty(t, c.Cluster.Prefix, "the default, /geodns, is the cluster package's")
	require.False(t, defaultConfig().Cluster.Enabled(), "no section: a single node")

	require.NoError(t, os.WriteFile(f, []byte("cluster: {etcd: [http://127.0.0.1:2379], node: ns1, lease_ttl: 1500ms}\n"), 0o644))
	c = defaultConfig()
	require.ErrorContains(t, c.load(f), "geodns.yaml:1:64: cluster.lease_ttl: 1.5s: want whole seconds, at least 2s")
}

// TestConfigBool: dnssec.follow, the config's boolean, loads; it used to
// stop the server with a panic ("config: no decoder for bool"), so a set
// sharing its keys as docs/dnssec.md says could not start.
func TestConfigBool(t *testing.T) {
	for _, tc := range []struct {
		text string
		want bool
		err  string
	}{
		{"true", true, ""}, {"yes", true, ""}, {"off", false, ""}, {"false", false, ""},
		{"maybe", false, `geodns.yaml:1:18: dnssec.follow: "maybe" is not true or false`},
	} {
		f := filepath.Join(t.TempDir(), "geodns.yaml")
		require.NoError(t, os.WriteFile(f, []byte("dnssec: {follow: "+tc.text+"}\n"), 0o644))
		c := defaultConfig()
		err := c.load(f)
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err)
			continue
		}
		require.NoError(t, err, tc.text)
		require.Equal(t, tc.want, c.DNSSEC.Follow, tc.text)
	}
}

// TestConfigDecodesEveryField: every field of the config has a decoder.
// A field of a kind without one panicked at load, for the operators who
// set it only.
func TestConfigDecodesEveryField(t *testing.T) {
	var walk func(reflect.Type, string)
	walk = func(ty reflect.Type, key string) {
		if ty.Kind() == reflect.Struct && ty != reflect.TypeOf(time.Time{}) {
			for i := range ty.NumField() {
				f := ty.Field(i)
				tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
				if tag == "" || tag == "-" {
					continue
				}
				walk(f.Type, strings.TrimPrefix(key+"."+tag, "."))
			}
			return
		}
		if ty.Kind() == reflect.Map {
			walk(ty.Elem(), key+".NAME")
			return
		}
		d := &configDecoder{file: "geodns.yaml"}
		v := reflect.New(ty).Elem()
		require.NotPanics(t, func() {
			d.decode(&yaml.Node{Kind: yaml.ScalarNode, Value: "1", Line: 1, Column: 1}, v, key)
		}, "%s (%s) has no decoder", key, ty)
	}
	walk(reflect.TypeOf(config{}), "")
}

// TestConfigKeySecret: dnssec.key_secret_file is refused outside an NS
// set, beside follow, and when it is too short, each at its key.
func TestConfigKeySecret(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	require.NoError(t, os.WriteFile(short, []byte("tiny\n"), 0o600))
	good := filepath.Join(dir, "good")
	require.NoError(t, os.WriteFile(good, []byte("c2VjcmV0IG9mIHRoZSBzZXQsIHNoYXJlZCBieSBldmVyeSBub2Rl\n"), 0o600))
	clusterKeys := "cluster: {etcd: [\"http://127.0.0.1:2379\"], node: ns1}\n"
	for _, tc := range []struct{ text, err string }{
		{"dnssec: {key_secret_file: " + good + "}\n", "geodns.yaml:1:27: dnssec.key_secret_file: keys are shared through etcd only in an NS set"},
		{clusterKeys + "dnssec: {key_secret_file: " + good + ", follow: true}\n", "geodns.yaml:2:" + fmt.Sprint(27+len(good)+10) + ": dnssec.follow: with key_secret_file"},
		{clusterKeys + "dnssec: {key_secret_file: " + short + "}\n", "has fewer than 32 bytes"},
		{clusterKeys + "dnssec: {key_secret_file: " + good + "}\n", ""},
	} {
		f := filepath.Join(t.TempDir(), "geodns.yaml")
		require.NoError(t, os.WriteFile(f, []byte(tc.text), 0o644))
		c := defaultConfig()
		err := c.load(f)
		if tc.err == "" {
			require.NoError(t, err)
			continue
		}
		require.ErrorContains(t, err, tc.err)
	}
}

// TestDNSSECCommandEtcdDown: `geodns dnssec ds` with the keys in etcd and
// etcd unreachable fails and names the endpoints it tried (it said only
// "context deadline exceeded").
func TestDNSSECCommandEtcdDown(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(secret, []byte("c2VjcmV0IG9mIHRoZSBzZXQsIHNoYXJlZCBieSBldmVyeSBub2Rl\n"), 0o600))
	dead := "http://" + freeAddr(t) // nothing listens there
	conf := filepath.Join(dir, "geodns.yaml")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf("cluster: {etcd: [%q], node: ns1}\ndnssec: {key_secret_file: %s}\n",
		dead, secret)), 0o644))
	code, _, errOut := runGeodns(t, "dnssec", "ds", "--zone", "example.com", "--config", conf)
	require.Equal(t, 1, code, errOut)
	require.Contains(t, errOut, "(etcd: "+dead+")")
	t.Logf("geodns dnssec ds, etcd down: %s", strings.TrimSpace(errOut))
}
