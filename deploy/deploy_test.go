// Package deploy holds the files operators deploy next to geodns: the
// Grafana dashboard and the Prometheus alerting rules. Its tests check
// every PromQL expression in them with promtool.
package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func promtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed: run scripts/test-deps.sh (make test does)")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

// TestAlertRules: the rules parse, and their unit tests (one firing and
// one quiet case per alert) pass.
func TestAlertRules(t *testing.T) {
	out := promtool(t, "prometheus", "check", "rules", "alerts.yml")
	t.Logf("%s", out)
	out = promtool(t, "prometheus", "test", "rules", "alerts_test.yml")
	t.Logf("%s", out)

	// Every alert has a unit test that expects it to fire.
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, "prometheus/alerts.yml", &rules)
	readYAML(t, "prometheus/alerts_test.yml", &tests)
	fires := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			}
		}
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				n++
				require.True(t, fires[r.Alert], "alert %s has no unit test that expects it to fire", r.Alert)
			}
		}
	}
	require.Positive(t, n)
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, v))
}

// grafanaVars are the dashboard's variables with values that make the
// expressions plain PromQL, as Grafana substitutes them.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "1m", "$__interval", "1m", "$__range", "6h",
	"$instance", ".*", "$zone", ".*", "$service", ".*",
)

// TestDashboardExpressions: every expr in the dashboard (panel targets and
// annotations), with Grafana's variables substituted, passes `promtool
// check rules` as a recording rule. (cmd/geodns's TestMetricsOfDeployFiles
// checks that the metrics they name are on a fresh server's /metrics.)
func TestDashboardExpressions(t *testing.T) {
	b, err := os.ReadFile("grafana/geodns.json")
	require.NoError(t, err)
	var dash any
	require.NoError(t, json.Unmarshal(b, &dash))
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(dash)
	require.Greater(t, len(exprs), 20, "the dashboard's expressions were found")
	sort.Strings(exprs)

	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	leftover := regexp.MustCompile(`\$\w+`)
	for i, e := range exprs {
		p := grafanaVars.Replace(e)
		require.False(t, leftover.MatchString(p), "unsubstituted variable in %q", e)
		rules = append(rules, rule{Record: fmt.Sprintf("dashboard:expr_%02d", i), Expr: p})
	}
	out, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "dashboard.rules.yml"), out, 0o644))
	res := promtool(t, dir, "check", "rules", "dashboard.rules.yml")
	t.Logf("%d dashboard expressions: %s", len(exprs), res)

}
