package zones

import (
	"strings"

	"github.com/miekg/dns"
)

// CanonicalName returns the canonical form of the domain name s (in
// presentation format, absolute or not): the form every name of a zone is
// keyed by and every lookup uses, so that one name has one spelling
// however it was written. It is the presentation form that miekg/dns's
// unpacker gives the name's wire octets, with A-Z lowered and nothing else
// (RFC 4343): `\065bc` and `ABC` become "abc", `\#x` becomes "#x", `\.`
// stays an escaped dot, a space becomes `\ ` and a byte outside printable
// ASCII `\DDD`. So a name from a message (dns.Msg.Unpack) needs only its letters
// lowered, and NameFromWire gives the same string from the octets.
// A name that cannot be packed (too long, a bad escape) is only lowered:
// the caller's validation reports it.
func CanonicalName(s string) string {
	s = dns.Fqdn(s)
	if plainName(s) {
		return strings.ToLower(s) // no allocation when already lower case
	}
	var buf [256]byte
	n, err := dns.PackDomainName(s, buf[:], 0, nil, false)
	if err != nil {
		return strings.ToLower(s)
	}
	return NameFromWire(buf[:n])
}

// plainName reports whether s is written as its canonical form would be,
// but for letter case: no escapes, only bytes the unpacker leaves as they
// are, and no empty label but the root's.
func plainName(s string) bool {
	if s == "." {
		return true
	}
	prev := byte('.')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if prev == '.' {
				return false
			}
		case c <= ' ' || c > '~', c == '\\', c == '\'', c == '@', c == ';', c == '(', c == ')', c == '"':
			return false
		}
		prev = c
	}
	return true
}

// NameFromWire returns the canonical form (see CanonicalName) of the
// uncompressed wire-format name w: its labels up to the root label or the
// end of w.
func NameFromWire(w []byte) string {
	return string(AppendNameFromWire(make([]byte, 0, len(w)+8), w))
}

// AppendNameFromWire appends the text form of wire name w to b, as
// NameFromWire returns it: into a buffer of the caller's, so a name can be
// looked up without allocating.
func AppendNameFromWire(b, w []byte) []byte {
	if len(w) == 0 || w[0] == 0 {
		return append(b, '.')
	}
	for i := 0; i < len(w) && w[i] != 0; i += int(w[i]) + 1 {
		end := min(i+1+int(w[i]), len(w))
		if plainLabel(w[i+1 : end]) {
			// The common case, written as it is: one copy, not a byte
			// at a time (a third of the time of an absent name's lookup).
			b = append(append(b, w[i+1:end]...), '.')
			continue
		}
		for _, c := range w[i+1 : end] {
			switch {
			case c >= 'A' && c <= 'Z':
				b = append(b, c+'a'-'A')
			case c == '.', c == ' ', c == '\'', c == '@', c == ';', c == '(', c == ')', c == '"', c == '\\':
				b = append(b, '\\', c)
			case c < ' ' || c > '~':
				b = append(b, '\\', '0'+c/100, '0'+c/10%10, '0'+c%10)
			default:
				b = append(b, c)
			}
		}
		b = append(b, '.')
	}
	return b
}

// plainLabel reports whether every octet of label is written as itself:
// printable, not upper case, nothing AppendNameFromWire escapes.
func plainLabel(label []byte) bool {
	for _, c := range label {
		if !plainOctet[c] {
			return false
		}
	}
	return true
}

// plainOctet: plainLabel's test, one load an octet rather than a dozen
// compares.
var plainOctet = func() (t [256]bool) {
	for c := '!'; c <= '~'; c++ {
		t[c] = !(c >= 'A' && c <= 'Z' || strings.ContainsRune(".'@;()\"\\", c))
	}
	return t
}()

// nameWireLen returns the length in octets of the wire form of the
// canonical name s.
func nameWireLen(s string) int {
	if s == "." {
		return 1
	}
	n := 1 // the root label
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]):
			i += 3
		case s[i] == '\\':
			i++
		}
		n++ // an octet, or a dot: the next label's length
	}
	return n
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
