package zones

import (
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// SyntaxError positions a yaml.v3 syntax error in data (the file) and adds
// a hint for the usual causes; zone files and the server config share it.
// yaml.v3 gives a line, no column, and for a badly indented line or an
// unclosed bracket often the line where the enclosing block starts; so the
// line reported is the first at which the file, read up to it, stops
// parsing, when that is later.
func SyntaxError(file string, data []byte, err error) *PosError {
	msg, line := err.Error(), 1
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	if l := firstBadLine(data, line); l > line {
		line = l
	}
	hint := ""
	switch {
	case strings.Contains(msg, "found character that cannot start any token"),
		strings.Contains(msg, "found a tab character"):
		hint = "a tab? YAML indents with spaces only"
	case strings.Contains(msg, "mapping values are not allowed"):
		hint = "is this line indented deeper than the key above it, or does a value hold an unquoted ': '? quote it"
	case strings.Contains(msg, "did not find expected key"),
		strings.Contains(msg, "did not find expected '-' indicator"),
		strings.Contains(msg, "block mapping"), strings.Contains(msg, "block sequence"):
		hint = "this line's indentation lines up with none of the keys or list items above it"
	case strings.Contains(msg, "found unexpected end of stream"),
		strings.Contains(msg, "did not find expected"):
		hint = "an unclosed quote or bracket?"
	}
	if hint != "" {
		msg += " (" + hint + ")"
	}
	return &PosError{File: file, Line: line, Col: 1, Msg: "yaml: " + msg}
}

// firstBadLine's bounds: each try parses a prefix of the file again, and
// a zone file can have a hundred thousand lines.
const (
	badLineTries  = 2000     // lines tried
	badLineBudget = 16 << 20 // bytes parsed in all
)

// firstBadLine returns the smallest n from line on such that the first n
// lines of data do not parse, or 0 when none does within badLineTries
// lines and badLineBudget bytes parsed. Prefixes ending before line are not tried: yaml.v3 never reports
// a line after the culprit, and a prefix that ends inside a multi-line
// value (a flow mapping spread over lines) would not parse either.
func firstBadLine(data []byte, line int) int {
	lines := strings.SplitAfter(string(data), "\n")
	prefix, budget := 0, badLineBudget
	for i, l := range lines {
		prefix += len(l)
		if i+1 < line {
			continue
		}
		if budget -= prefix; i+1 >= line+badLineTries || budget < 0 {
			return 0
		}
		var n yaml.Node
		if yaml.Unmarshal(data[:prefix], &n) != nil {
			return i + 1
		}
	}
	return 0
}
