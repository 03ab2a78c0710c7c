package zones

import (
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/geodns/geodns/internal/suggest"
	"github.com/miekg/dns"
	"gopkg.in/yaml.v3"
)

// decoder walks yaml.Node trees so that every complaint carries the node's
// position; it keeps going after errors so one pass reports them all.
type decoder struct {
	file string
	errs errList
}

func (d *decoder) errf(n *yaml.Node, format string, args ...any) {
	d.errs.add(d.file, n.Line, n.Column, format, args...)
}

// entries visits a mapping's key/value pairs in order, rejecting duplicate keys.
func (d *decoder) entries(n *yaml.Node, what string, fn func(k, v *yaml.Node)) {
	n = resolveAlias(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errf(n, "%s: expected a mapping, got %s", what, kindName(n))
		return
	}
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolveAlias(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.errf(k, "%s: keys must be scalars", what)
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			d.errf(k, "%s: duplicate key %q (first at line %d)", what, k.Value, prev.Line)
			continue
		}
		seen[k.Value] = k
		fn(k, v)
	}
}

// fields decodes a mapping with a fixed set of keys; unknown keys are errors.
func (d *decoder) fields(n *yaml.Node, what string, fs map[string]func(v *yaml.Node)) {
	d.entries(n, what, func(k, v *yaml.Node) {
		f, ok := fs[k.Value]
		if !ok {
			keys := slices.Sorted(maps.Keys(fs))
			if s := suggest.Closest(k.Value, keys); s != "" {
				d.errf(k, "%s: unknown key %q (did you mean %s?)", what, k.Value, s)
			} else {
				d.errf(k, "%s: unknown key %q (keys: %s)", what, k.Value, strings.Join(keys, ", "))
			}
			return
		}
		f(v)
	})
}

func (d *decoder) scalar(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.errf(n, "%s: expected a single value, got %s", what, kindName(n))
		return "", false
	}
	return n.Value, true
}

// list accepts one scalar or a sequence of scalars.
func (d *decoder) list(n *yaml.Node, what string) []*yaml.Node {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			d.errf(n, "%s: empty value", what)
			return nil
		}
		return []*yaml.Node{n}
	case yaml.SequenceNode:
		var out []*yaml.Node
		for _, c := range n.Content {
			c = resolveAlias(c)
			if c.Kind != yaml.ScalarNode || c.Tag == "!!null" {
				d.errf(c, "%s: expected a single value, got %s", what, kindName(c))
				continue
			}
			out = append(out, c)
		}
		return out
	}
	d.errf(n, "%s: expected a value or a list, got %s", what, kindName(n))
	return nil
}

func (d *decoder) int(n *yaml.Node, what string, lo, hi int64) (int64, bool) {
	s, ok := d.scalar(n, what)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		d.errf(n, "%s: %q is not a whole number", what, s)
		return 0, false
	}
	if v < lo || v > hi {
		d.errf(n, "%s: %d is out of range [%d, %d]", what, v, lo, hi)
		return 0, false
	}
	return v, true
}

// ttl decodes a TTL; RFC 2181 section 8 caps them at 2^31-1.
func (d *decoder) ttl(n *yaml.Node, what string) (uint32, bool) {
	v, ok := d.int(n, what, 0, math.MaxInt32)
	return uint32(v), ok
}

func (d *decoder) float(n *yaml.Node, what string, lo, hi float64) (float64, bool) {
	s, ok := d.scalar(n, what)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) {
		d.errf(n, "%s: %q is not a number", what, s)
		return 0, false
	}
	if v < lo || v > hi {
		d.errf(n, "%s: %v is out of range [%v, %v]", what, v, lo, hi)
		return 0, false
	}
	return v, true
}

func (d *decoder) bool(n *yaml.Node, what string) (bool, bool) {
	s, ok := d.scalar(n, what)
	if !ok {
		return false, false
	}
	switch strings.ToLower(s) {
	case "true", "yes", "on":
		return true, true
	case "false", "no", "off":
		return false, true
	}
	d.errf(n, "%s: %q is not true or false", what, s)
	return false, false
}

func (d *decoder) duration(n *yaml.Node, what string) (time.Duration, bool) {
	s, ok := d.scalar(n, what)
	if !ok {
		return 0, false
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.errf(n, "%s: %q is not a duration (like 1s or 800ms)", what, s)
		return 0, false
	}
	if v <= 0 || v > time.Hour {
		d.errf(n, "%s: %v is out of range (0, 1h]", what, v)
		return 0, false
	}
	return v, true
}

func (d *decoder) addr(n *yaml.Node, what string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(n.Value)
	if err != nil || a.Zone() != "" {
		d.errf(n, "%s: %q is not an IPv4 or IPv6 address", what, n.Value)
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// domain decodes a name relative to origin ("@" is the origin itself).
func (d *decoder) domain(n *yaml.Node, what, origin string) (string, bool) {
	s, ok := d.scalar(n, what)
	if !ok {
		return "", false
	}
	name, err := absName(s, origin)
	if err != nil {
		d.errf(n, "%s: %v", what, err)
		return "", false
	}
	return name, true
}

// absName makes s absolute against origin and checks its syntax.
func absName(s, origin string) (string, error) {
	switch {
	case s == "@":
		return origin, nil
	case s == "":
		return "", fmt.Errorf("empty name")
	case !dns.IsFqdn(s):
		if origin == "." {
			s += "."
		} else {
			s += "." + origin
		}
	}
	if _, ok := dns.IsDomainName(s); !ok {
		return "", fmt.Errorf("%q is not a valid domain name", s)
	}
	return CanonicalName(s), nil
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}
