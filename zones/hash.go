package zones

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// hash digests the zone's content, ignoring the serial, so a reload of
// unchanged content keeps its serial. An imported file counts by its bytes,
// hashed as the parser read them: on a big zone, walking a million records
// again cost more than the rest of the load after the parse. So an edit of
// it that changes no record (a comment) moves the serial too. The YAML's
// own records and service names are digested one by one and the digests
// summed, which needs no canonical order.
func (c *compiler) hash(recs []placed, uses []serviceUse) [32]byte {
	var sum digest
	buf := make([]byte, 512)
	for _, p := range recs {
		buf = sum.addRR(buf, p.rr)
	}
	for _, u := range uses {
		sum.add([]byte(u.owner + " service " + u.name))
	}
	var b bytes.Buffer
	b.Write(c.imported[:])
	binary.Write(&b, binary.BigEndian, c.spec.ttl) // the imported records' default TTL
	binary.Write(&b, binary.BigEndian, sum)
	for _, site := range c.z.SiteList {
		fmt.Fprintf(&b, "%+v\n", *site)
	}
	for _, svc := range c.spec.services {
		fmt.Fprintf(&b, "%+v\n", svc.Service)
	}
	for _, ch := range c.spec.checks {
		fmt.Fprintf(&b, "%+v\n", *ch)
	}
	if c.spec.dnssec != nil {
		fmt.Fprintf(&b, "dnssec %+v\n", *c.spec.dnssec) // signing on or off changes what is served
	}
	return sha256.Sum256(b.Bytes())
}

// digest is a sum of sha256 digests: the same for the same items in any order.
type digest [2]uint64

func (d *digest) add(b []byte) {
	h := sha256.Sum256(b)
	d[0] += binary.BigEndian.Uint64(h[:8])
	d[1] += binary.BigEndian.Uint64(h[8:16])
}

// addRR adds rr, with its serial zeroed if it is an SOA, in wire form; buf
// is scratch space, returned for the next call.
func (d *digest) addRR(buf []byte, rr dns.RR) []byte {
	if soa, ok := rr.(*dns.SOA); ok {
		x := *soa
		x.Serial = 0
		rr = &x
	}
	if b, ok := addressKey(buf[:0], rr); ok {
		d.add(b)
		return buf
	}
	off, err := dns.PackRR(rr, buf, 0, nil, false)
	if err != nil && len(buf) < dns.MaxMsgSize {
		buf = make([]byte, dns.MaxMsgSize) // a record this size: retry with room
		off, err = dns.PackRR(rr, buf, 0, nil, false)
	}
	if err != nil {
		d.add([]byte(rr.String())) // cannot pack: its text still identifies it
		return buf
	}
	d.add(buf[:off])
	return buf
}

// addressKey encodes an A or AAAA record for the hash without packing it
// (packing was most of the hash's time on a big zone). The 0xFF it starts
// with begins no packed record, whose name starts with a label length.
func addressKey(b []byte, rr dns.RR) ([]byte, bool) {
	var ip []byte
	switch x := rr.(type) {
	case *dns.A:
		ip = x.A.To4()
	case *dns.AAAA:
		ip = x.AAAA.To16()
	}
	if ip == nil {
		return nil, false
	}
	h := rr.Header()
	b = append(append(append(b, 0xFF), h.Name...), 0)
	b = binary.BigEndian.AppendUint16(b, h.Rrtype)
	b = binary.BigEndian.AppendUint16(b, h.Class)
	b = binary.BigEndian.AppendUint32(b, h.Ttl)
	return append(b, ip...), true
}

// shares runs f on shares of the zone's nodes, one per core for big zones,
// and returns the sum of what it returns.
func (c *compiler) shares(f func([]*node) [2]uint64) [2]uint64 {
	nodes := c.all
	workers := min(runtime.GOMAXPROCS(0), 1+len(nodes)/10000)
	sums := make([][2]uint64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { sums[w] = f(nodes[w*len(nodes)/workers : (w+1)*len(nodes)/workers]) })
	}
	wg.Wait()
	var sum [2]uint64
	for _, s := range sums {
		sum[0] += s[0]
		sum[1] += s[1]
	}
	return sum
}

// serial sets an automatic serial unless the zone gives one: the file's
// modification time in seconds (stable across restarts), moved past the
// previous serial whenever the content changed (RFC 1982 arithmetic).
func (c *compiler) serial(mtime time.Time, prev *Zone) {
	z := c.z
	if c.spec.serialSet {
		z.Serial = z.soa.Serial
		return
	}
	serial := uint32(mtime.Unix())
	if prev != nil {
		switch {
		case prev.Hash == z.Hash:
			serial = prev.Serial
		case !serialAfter(serial, prev.Serial):
			serial = prev.Serial + 1
		}
	}
	if src := c.limits.serials; src != nil {
		// Asked on every load, unchanged content too: a serial given alone
		// (the source could not answer) is corrected by the next load.
		moved := prev != nil && prev.Hash != z.Hash
		var ps uint32
		if moved {
			ps = prev.Serial
		}
		// Used when the source cannot answer too: it may have kept the
		// serial it gave this content before (a node restarted while etcd
		// is down serves the set's serial, not its file's mtime).
		serial, _ = src.Serial(z.Origin, z.Hash, serial, ps, moved)
	}
	soa := dns.Copy(z.soa).(*dns.SOA)
	soa.Serial = serial
	z.soa, z.Serial = soa, serial
	sets := z.apex.sets
	sets[slices.IndexFunc(sets, func(s rrset) bool { return s.rtype == dns.TypeSOA })].all[0] = soa
}

// SerialSource numbers the automatic serials of a set of servers, so
// that the same content of a zone has the same serial on each
// (cluster.Serials). Zones with a serial in their file do not ask.
type SerialSource interface {
	// Serial returns the serial of the zone's content (hash). want is the
	// serial this server would give it alone. moved: the server replaces
	// another content, served with serial prev, which the new content's
	// serial must come after. ok false (the source cannot answer now):
	// serial is want, or the serial the source gave this content before
	// and kept (after prev when moved); the zone is to be loaded again
	// when the source answers. The serial returned is used either way.
	Serial(origin string, hash [32]byte, want, prev uint32, moved bool) (serial uint32, ok bool)
}

// serialAfter reports whether a comes after b in RFC 1982 serial arithmetic.
func serialAfter(a, b uint32) bool {
	return a != b && a-b < 1<<31
}
