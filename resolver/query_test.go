package resolver

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestLowerASCII checks the eight-bytes-at-a-time folding against the
// byte-at-a-time rule, for every byte value in every position, among
// random neighbours (a carry from one byte into the next would show).
func TestLowerASCII(t *testing.T) {
	fold := func(c byte) byte {
		if c >= 'A' && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	r := rand.New(rand.NewPCG(1, 2))
	for pos := range 8 {
		for v := range 256 {
			for range 16 {
				var b [8]byte
				for i := range b {
					b[i] = byte(r.Uint32())
				}
				b[pos] = byte(v)
				var w uint64
				for i := range b {
					w |= uint64(b[i]) << (8 * i)
				}
				got := lowerASCII(w)
				for i := range b {
					if g, want := byte(got>>(8*i)), fold(b[i]); g != want {
						t.Fatalf("%x: byte %d is %#x, want %#x", b, i, g, want)
					}
				}
			}
		}
	}
}

// TestReadQnameLowers reads names of every length with random letter case
// from queries that end right after the question (readQname's last
// eight bytes then come one at a time) and from longer ones.
func TestReadQnameLowers(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_*\\@[`{"
	for size := 1; size <= 255; size++ {
		// Labels of random lengths filling size bytes, root included.
		var name []byte
		for left := size - 1; left > 0; {
			l := min(left-1, 1+r.IntN(63))
			if l == 0 {
				break
			}
			name = append(name, byte(l))
			for range l {
				name = append(name, chars[r.IntN(len(chars))])
			}
			left -= l + 1
		}
		name = append(name, 0)
		for _, tail := range []int{4, 4 + 11} {
			q := make([]byte, 12, 12+len(name)+tail)
			q[5] = 1 // one question
			q = append(q, name...)
			q = append(q, make([]byte, tail)...)
			var fq query
			end, ok := readQname(q, 12, &fq)
			if !ok || end != 12+len(name) {
				t.Fatalf("size %d: ok %v, end %d", size, ok, end)
			}
			want := bytes.ToLower(name) // the length bytes (at most 63) are no letters
			if got := fq.lowerName(); !bytes.Equal(got, want) {
				t.Fatalf("size %d, tail %d: %q, want %q", size, tail, got, want)
			}
			if !bytes.Equal(fq.name, name) {
				t.Fatalf("size %d: the name as asked changed", size)
			}
		}
	}
}
