package xfr

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/geodns/geodns/internal/statefile"
	"github.com/geodns/geodns/resolver"
	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Inner answers ordinary queries; *resolver.Handler is one.
type Inner interface {
	ServeWire(q []byte, remote netip.Addr, tcp bool, out []byte) []byte
	Answer(req *dns.Msg, remote netip.Addr, tcp bool) *dns.Msg
	// Recovered counts (and logs) a panic recovered while answering.
	Recovered(p any)
}

// Options configure a Server.
type Options struct {
	Zones *atomic.Pointer[zones.Set]
	Inner Inner
	Keys  Keys
	// StateDir keeps the exported serials and the IXFR journal across
	// restarts (xfr.json). "": kept in memory only.
	StateDir string
	// Catalog is the catalog zone (RFC 9432); its Zone "" means none.
	Catalog Catalog
	// JournalLen bounds the IXFR journal of each zone, in versions.
	// Default 32.
	JournalLen int
	// JournalRecords bounds it in records (deleted plus added); an older
	// version is dropped first. Default 100000.
	JournalRecords int
	// Serials, if set, numbers the exported serials for a set of servers
	// (cluster.Serials, asked for "export:<zone>"): one exported content,
	// one serial on every server, whatever reloads each has seen.
	Serials zones.SerialSource
	// NotifyFrom are the addresses NOTIFY leaves from, the first of each
	// family used (the server's listen addresses when they name one; a
	// secondary's allow-notify names the primary's address). None: the
	// system picks, which on a host with several addresses may be another.
	NotifyFrom []netip.Addr
	// Registerer, if set, gets the transfer metrics.
	Registerer prometheus.Registerer
	// MaxUDPSize caps a signed UDP answer, TSIG included, whatever the
	// client's EDNS size, as the inner handler caps the others. Default
	// resolver.DefaultMaxUDPSize.
	MaxUDPSize uint16
	// Signer, if set, signs the transfers of signed zones (dnssec:):
	// secondaries get the zone signed, as they must serve it.
	Signer Signer
	Log    *slog.Logger
}

// Signer signs a zone's exported records for transfer; *dnssec.Manager is
// one.
type Signer interface {
	// Export returns rrs (the SOA excluded) signed: the DNSKEY RRset, an
	// NSEC chain and the RRSIGs, with what signs the SOA once its serial
	// is known. The same records and stamp give the same bytes.
	Export(origin string, soa *dns.SOA, rrs []dns.RR) ([]dns.RR, func(*dns.SOA) []dns.RR, error)
	// ExportStamp changes when Export's signatures would (keys, window);
	// ok is false for a zone it does not sign.
	ExportStamp(origin string) (stamp string, ok bool)
}

// Catalog is the catalog zone's server config (catalog:).
type Catalog struct {
	Zone   string   `yaml:"zone"`   // e.g. catalog.invalid.
	Allow  []string `yaml:"allow"`  // as a zone's transfer: allow
	Notify []string `yaml:"notify"` // as a zone's transfer: notify
}

// Server serves transfers and TSIG-signed queries and sends NOTIFY. Its
// query-path methods (ServeWire, Claims, Stream) only load views; Run
// builds them.
type Server struct {
	opts    Options
	timed   timedInner // opts.Inner, if it takes the time a query was read
	views   atomic.Pointer[map[string]*view]
	kick    chan struct{}
	catalog *view // the catalog's transfer settings, parsed once

	// Run's own, except where noted.
	state    map[string]*zoneState
	lastSet  *zones.Set
	notifyMu sync.Mutex
	pending  map[string]*context.CancelFunc // origin+target -> the NOTIFY still retrying
	held     map[string]hold                // zones whose view is held back (update)

	notifies atomic.Uint64 // NOTIFY messages sent, retries included
	running  atomic.Int32  // Runs building views: a transfer waits for one only then
	built    atomic.Pointer[zones.Set]
	// patched: some view's exported serial is not its zone's own, so SOA
	// answers may need patching; while false (nearly always) an SOA query
	// costs the wrapper nothing more than any other query.
	patched atomic.Bool
}

// view is a zone's exported view: immutable once published.
type view struct {
	origin  string
	src     *zones.Zone // the version it was built from; nil for the catalog
	soa     *dns.SOA    // with the exported serial
	rrs     []dns.RR    // SOA excluded, canonical order
	hash    [32]byte
	tr      *zones.Transfer
	journal []delta // oldest first; the last ends at soa.Serial
	// A signed zone's: the SOA's signatures, and what rrs were signed
	// with (Signer.ExportStamp).
	soaSigs []dns.RR
	stamp   string
	signSOA func(*dns.SOA) []dns.RR // signs an SOA as rrs are signed
}

// delta is one change of the exported content.
type delta struct {
	From, To uint32
	Del, Add []dns.RR
	// The two versions' SOAs, which begin its deletions and its additions
	// in an IXFR (RFC 1995 4); nil when not known (a state file written
	// before they were kept).
	FromSOA, ToSOA *dns.SOA
}

// zoneState is what the state file keeps of a zone.
type zoneState struct {
	Serial  uint32      `json:"serial"`
	Hash    string      `json:"hash"`
	SOA     string      `json:"soa,omitempty"` // the SOA with serial 0: its other fields
	Journal []deltaJSON `json:"journal,omitempty"`
}

type deltaJSON struct {
	From    uint32   `json:"from"`
	To      uint32   `json:"to"`
	Del     []string `json:"del"`
	Add     []string `json:"add"`
	FromSOA string   `json:"from_soa,omitempty"`
	ToSOA   string   `json:"to_soa,omitempty"`
}

// New returns a server; nothing is served until Run has built the views.
func New(o Options) (*Server, error) {
	if o.JournalLen <= 0 {
		o.JournalLen = 32
	}
	if o.JournalRecords <= 0 {
		o.JournalRecords = 100000
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.MaxUDPSize == 0 {
		o.MaxUDPSize = resolver.DefaultMaxUDPSize
	}
	s := &Server{opts: o, kick: make(chan struct{}, 1), state: map[string]*zoneState{}, pending: map[string]*context.CancelFunc{}, held: map[string]hold{}}
	s.timed, _ = o.Inner.(timedInner)
	empty := map[string]*view{}
	s.views.Store(&empty)
	if o.Catalog.Zone != "" {
		tr, err := parseTransfer(o.Catalog.Allow, o.Catalog.Notify)
		if err != nil {
			return nil, err
		}
		s.catalog = &view{origin: dns.CanonicalName(o.Catalog.Zone), tr: tr}
	}
	s.load()
	if o.Registerer != nil {
		if err := o.Registerer.Register(collector{s}); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Changed asks Run to look at the zone set now rather than at its next poll.
func (s *Server) Changed(*zones.Set) {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Notifies returns how many NOTIFY messages were sent.
func (s *Server) Notifies() uint64 { return s.notifies.Load() }

// Serial returns the exported serial of a zone, and whether it is served.
func (s *Server) Serial(origin string) (uint32, bool) {
	v := (*s.views.Load())[dns.CanonicalName(origin)]
	if v == nil {
		return 0, false
	}
	return v.soa.Serial, true
}

// Built returns the zone set the views were last built from.
func (s *Server) Built() *zones.Set { return s.built.Load() }

const pollEvery = 200 * time.Millisecond

// Run rebuilds the exported views when the zone set changes (on Changed,
// or polled), and sends NOTIFY for every exported serial that moved.
func (s *Server) Run(ctx context.Context) error {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	s.running.Add(1)
	defer s.running.Add(-1)
	for {
		s.update(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-s.kick:
		case <-t.C:
		}
	}
}

// update builds the views of the zones that changed.
func (s *Server) update(ctx context.Context) {
	set := s.opts.Zones.Load()
	if set == nil {
		return
	}
	old := *s.views.Load()
	if set == s.lastSet && !s.resign(set, old) {
		return
	}
	s.lastSet = set
	next := make(map[string]*view, len(old))
	var changed []*view
	dirty := false
	for _, z := range set.Zones() {
		prev := old[z.Origin]
		stamp, signed := s.stamp(z)
		if prev != nil && prev.src == z && prev.stamp == stamp {
			next[z.Origin] = prev
			continue
		}
		if s.held[z.Origin].holds(z, stamp) {
			if prev != nil {
				next[z.Origin] = prev
			}
			continue
		}
		if z.Transfer == nil {
			// Not transferable: no exported view to build (sorting and
			// digesting a big zone on each reload would be for nothing),
			// and not in the catalog.
			next[z.Origin] = &view{origin: z.Origin, src: z, soa: z.SOA()}
			continue
		}
		if st := s.state[z.Origin]; z.DNSSEC != nil && !signed && st != nil && serialAfter(st.Serial, z.Serial) {
			// Signed online but not for transfer (its keys not loaded),
			// it would export under its own serial, which is behind what
			// was exported (signed for transfer): secondaries keep what
			// they have until the zone is signed again or its serial
			// passes the exported one.
			if prev != nil {
				next[z.Origin] = prev
			}
			if s.held[z.Origin].z != z { // said once per version
				s.opts.Log.Error("transfer: the zone's transfer cannot be signed and its serial is behind the exported one; secondaries keep what they have",
					"zone", z.Origin, "serial", z.Serial, "exported", st.Serial)
			}
			s.held[z.Origin] = hold{z, stamp, time.Now()}
			continue
		}
		var rrs []dns.RR
		var hash [32]byte
		var signSOA func(*dns.SOA) []dns.RR
		switch {
		case prev != nil && prev.src != nil && prev.rrs != nil && prev.src.Hash == z.Hash && prev.stamp == stamp &&
			(!signed || prev.signSOA != nil):
			// The same content reloaded (a SIGHUP reloads every zone):
			// the same exported records (signed with the same keys in the
			// same window), not sorted, digested or signed again.
			rrs, hash, signSOA = prev.rrs, prev.hash, prev.signSOA
		case signed:
			rrs, _ = exported(z)
			var err error
			rrs, signSOA, err = s.opts.Signer.Export(z.Origin, z.SOA(), rrs)
			if err != nil {
				s.opts.Log.Error("transfer: cannot sign the zone; secondaries keep what they have", "zone", z.Origin, "error", err)
				s.held[z.Origin] = hold{z, stamp, time.Now()}
				if prev != nil {
					next[z.Origin] = prev
				}
				continue
			}
			rrs, hash = sortDigest(rrs)
		default:
			rrs, hash = exported(z)
		}
		// A signed zone whose signer does not sign it (its keys could not
		// be loaded) exports unsigned, as it is served, under its own
		// serial: the SOA's RRSIG in answers covers that serial.
		v := s.version(prev, z.Origin, z.SOA(), z.Serial, rrs, hash, true, z.DNSSEC != nil && !signed, signSOA)
		v.src, v.tr, v.stamp = z, z.Transfer, stamp
		next[z.Origin] = v
		delete(s.held, z.Origin)
		dirty = true
		if prev == nil || prev.soa.Serial != v.soa.Serial {
			changed = append(changed, v)
		}
	}
	for o := range old {
		if next[o] == nil && (s.catalog == nil || o != s.catalog.origin) {
			// Removed: its serial and digest are kept, so the zone added
			// back continues after its last exported serial (secondaries
			// may still hold it); its journal is dropped.
			if st := s.state[o]; st != nil && st.Journal != nil {
				s.state[o] = &zoneState{Serial: st.Serial, Hash: st.Hash, SOA: st.SOA}
				dirty = true
			}
		}
	}
	if s.catalog != nil {
		prev := old[s.catalog.origin]
		rrs, hash := catalogRecords(s.catalog.origin, next)
		if prev == nil || prev.hash != hash {
			soa := catalogSOA(s.catalog.origin)
			v := s.version(prev, s.catalog.origin, soa, uint32(time.Now().Unix()), rrs, hash, false, false, nil)
			v.tr = s.catalog.tr
			changed = append(changed, v)
			dirty = true
			prev = v
		}
		next[s.catalog.origin] = prev
	}
	// Durable before visible: a serial a secondary has seen (or a test
	// has read) survives a restart with its journal.
	if dirty {
		s.save()
	}
	s.views.Store(&next)
	patched := false
	for _, v := range next {
		if v.src != nil && v.src.Serial != v.soa.Serial {
			patched = true
			break
		}
	}
	s.patched.Store(patched)
	s.built.Store(set)
	for _, v := range changed {
		s.notify(ctx, v)
	}
}

// version makes the next view of a zone. The exported serial follows the
// zone's own serial (want) whenever it moves forward, past the last
// exported serial, whether the exported content changed or not (an
// unchanged content journals an empty difference: the new SOA fields
// travel in the IXFR); it stays the same while neither the content nor
// the zone's serial moves; and a new content under a serial that did not
// move forward gets the last exported serial + 1 (SOA answers are then
// patched). fixed (a signed zone, whose SOA is signed as the zone has
// it): the serial is always want, so what is signed is what is served.
// follow false (the catalog): want is used only when the content changes.
// signSOA (a zone signed for transfer) signs the exported SOA; a new
// version's difference deletes the last SOA's signatures and adds its own.
func (s *Server) version(prev *view, origin string, soa *dns.SOA, want uint32, rrs []dns.RR, hash [32]byte, follow, fixed bool, signSOA func(*dns.SOA) []dns.RR) *view {
	v := &view{origin: origin, rrs: rrs, hash: hash}
	made := false // the journal ends with a delta made here
	st := s.state[origin]
	hashHex := hex.EncodeToString(hash[:])
	// The SOA's other fields are content too: an edit of the negative TTL
	// alone under an unchanged serial moves the export as a record's edit
	// does, or secondaries would keep the old SOA under the same serial.
	// (A state written before they were kept has none: taken as equal.)
	k := dns.Copy(soa).(*dns.SOA)
	k.Serial = 0
	soaText := k.String()
	same := st != nil && st.Hash == hashHex && (st.SOA == "" || st.SOA == soaText)
	serial := want
	switch {
	case st == nil, fixed:
	case follow && serialAfter(want, st.Serial):
	case same:
		serial = st.Serial
	case !serialAfter(want, st.Serial):
		serial = st.Serial + 1
	}
	if st != nil {
		// The journal up to the last version, and that version's records
		// when known.
		var base []delta
		var old []dns.RR
		known := false
		switch {
		case prev != nil && prev.rrs != nil && hex.EncodeToString(prev.hash[:]) == st.Hash:
			base, old, known = prev.journal, prev.rrs, true
		case prev == nil:
			base = s.journalFromState(st)
			old, known = rrs, same
		}
		switch {
		case serial == st.Serial && same:
			v.journal = base
		case serialAfter(serial, st.Serial) && known:
			// Journaled: what changed since the last version (maybe
			// nothing but the SOA). It is the journal's last delta, of a
			// slice of its own (trim drops the oldest first).
			d := diff(old, rrs)
			d.From, d.To = st.Serial, serial
			d.FromSOA = lastSOA(prev, st)
			v.journal = s.trim(append(append([]delta(nil), base...), d))
			made = len(v.journal) > 0
		}
		// Else (a restart with other content, or a signed zone whose
		// serial did not move forward): the old content is not kept, so
		// IXFR from before falls back to AXFR.
	}
	if src := s.opts.Serials; src != nil && !fixed {
		moved := st != nil && (!same || serial != st.Serial)
		var prevSerial uint32
		if moved {
			prevSerial = st.Serial
		}
		key := hash
		if follow {
			// One exported version is its content under one zone serial:
			// the zone's serial, numbered for the cluster already, moves
			// the export on every node alike.
			var b [36]byte
			copy(b[:], hash[:])
			binary.BigEndian.PutUint32(b[32:], want)
			key = sha256.Sum256(b[:])
		}
		// Used when the source cannot answer too (zones.SerialSource): it
		// may have kept the set's serial for this export.
		if x, _ := src.Serial("export:"+origin, key, serial, prevSerial, moved); x != serial {
			if made {
				v.journal[len(v.journal)-1].To = x
			} else {
				// Renumbered, not changed, or changed with no delta: the
				// journal's deltas end at another serial.
				v.journal = nil
			}
			serial = x
		}
	}
	x := dns.Copy(soa).(*dns.SOA)
	x.Serial = serial
	v.soa = x
	if signSOA != nil {
		v.soaSigs, v.signSOA = signSOA(x), signSOA
	}
	// The last version's SOA signatures: the view's, or after a restart
	// (no view) with the same content (so the same window and keys), the
	// same deterministic signatures made again over the last SOA.
	var oldSigs []dns.RR
	switch {
	case prev != nil:
		oldSigs = prev.soaSigs
	case st != nil && same && signSOA != nil:
		if last := lastSOA(nil, st); last != nil {
			oldSigs = signSOA(last)
		}
	}
	if made {
		d := &v.journal[len(v.journal)-1]
		d.ToSOA = x
		d.Del = append(d.Del, oldSigs...)
		d.Add = append(d.Add, v.soaSigs...)
	}
	s.state[origin] = &zoneState{Serial: serial, Hash: hashHex, SOA: soaText, Journal: journalJSON(v.journal)}
	return v
}

// lastSOA returns the SOA of the last exported version (serial
// st.Serial): the view's, or after a restart the one the state file
// keeps; nil if neither is known.
func lastSOA(prev *view, st *zoneState) *dns.SOA {
	if prev != nil && prev.soa != nil && prev.soa.Serial == st.Serial {
		return prev.soa
	}
	if st.SOA == "" {
		return nil
	}
	soa, ok := parseSOA(st.SOA)
	if !ok {
		return nil
	}
	soa.Serial = st.Serial
	return soa
}

// hold is a zone version whose view is held back, its transfer not
// signed with stamp (signing failed, or its signer has no keys): looked at
// again when either changes, or a minute later, not at every poll.
type hold struct {
	z     *zones.Zone
	stamp string
	at    time.Time
}

func (h hold) holds(z *zones.Zone, stamp string) bool {
	return h.z == z && h.stamp == stamp && time.Since(h.at) < time.Minute
}

// stamp returns what a zone's transfer would be signed with now, and
// whether it is signed for transfer.
func (s *Server) stamp(z *zones.Zone) (string, bool) {
	if z.DNSSEC == nil || z.Transfer == nil || s.opts.Signer == nil {
		return "", false
	}
	return s.opts.Signer.ExportStamp(z.Origin)
}

// resign reports whether a signed zone's transfer is to be signed again
// (a new window, a key event) though the zone set did not change.
func (s *Server) resign(set *zones.Set, views map[string]*view) bool {
	if s.opts.Signer == nil {
		return false
	}
	for _, z := range set.Zones() {
		if z.DNSSEC == nil || z.Transfer == nil {
			continue
		}
		stamp, _ := s.stamp(z)
		if s.held[z.Origin].holds(z, stamp) {
			continue
		}
		if v := views[z.Origin]; v == nil || v.stamp != stamp {
			return true
		}
	}
	return false
}

// trim keeps the journal within its bounds, dropping the oldest first.
func (s *Server) trim(j []delta) []delta {
	n := 0
	for _, d := range j {
		n += len(d.Del) + len(d.Add)
	}
	for len(j) > 0 && (len(j) > s.opts.JournalLen || n > s.opts.JournalRecords) {
		n -= len(j[0].Del) + len(j[0].Add)
		j = j[1:]
	}
	return j
}

// diff returns what to delete from a and add to it to get b; both are
// in canonical order with equal records adjacent, compared as text.
func diff(a, b []dns.RR) delta {
	in := func(rrs []dns.RR) map[string]dns.RR {
		m := make(map[string]dns.RR, len(rrs))
		for _, rr := range rrs {
			m[rr.String()] = rr
		}
		return m
	}
	ma, mb := in(a), in(b)
	var d delta
	for _, rr := range a {
		if _, ok := mb[rr.String()]; !ok {
			d.Del = append(d.Del, rr)
		}
	}
	for _, rr := range b {
		if _, ok := ma[rr.String()]; !ok {
			d.Add = append(d.Add, rr)
		}
	}
	return d
}

func journalJSON(j []delta) []deltaJSON {
	out := make([]deltaJSON, len(j))
	for i, d := range j {
		out[i] = deltaJSON{From: d.From, To: d.To}
		if d.FromSOA != nil && d.ToSOA != nil {
			out[i].FromSOA, out[i].ToSOA = d.FromSOA.String(), d.ToSOA.String()
		}
		for _, rr := range d.Del {
			out[i].Del = append(out[i].Del, rr.String())
		}
		for _, rr := range d.Add {
			out[i].Add = append(out[i].Add, rr.String())
		}
	}
	return out
}

func (s *Server) journalFromState(st *zoneState) []delta {
	var j []delta
	for _, dj := range st.Journal {
		d := delta{From: dj.From, To: dj.To}
		ok := true
		parse := func(texts []string) (out []dns.RR) {
			for _, t := range texts {
				rr, err := dns.NewRR(t)
				if err != nil || rr == nil {
					ok = false
					continue
				}
				out = append(out, rr)
			}
			return out
		}
		d.Del, d.Add = parse(dj.Del), parse(dj.Add)
		if dj.FromSOA != "" && dj.ToSOA != "" {
			// Unreadable, they are left out: the IXFR then falls back
			// to the current SOA's fields, as before they were kept.
			d.FromSOA, _ = parseSOA(dj.FromSOA)
			d.ToSOA, _ = parseSOA(dj.ToSOA)
		}
		if !ok {
			j = nil // a gap: IXFR from before it falls back to AXFR
			continue
		}
		j = append(j, d)
	}
	return j
}

// parseSOA parses an SOA's text.
func parseSOA(text string) (*dns.SOA, bool) {
	rr, err := dns.NewRR(text)
	if err != nil {
		return nil, false
	}
	soa, ok := rr.(*dns.SOA)
	return soa, ok
}

func (s *Server) stateFile() string {
	if s.opts.StateDir == "" {
		return ""
	}
	return filepath.Join(s.opts.StateDir, "xfr.json")
}

// load reads the state file, if any. A corrupt one is kept aside and the
// previous copy read instead (statefile.Load): serials restarting from
// the zones' own could go back below what secondaries hold, and they
// would ignore every update until the zone's serial caught up.
func (s *Server) load() {
	f := s.stateFile()
	if f == "" {
		return
	}
	statefile.Load(f, "transfer state", s.opts.Log, func(b []byte) error {
		var st map[string]*zoneState
		if err := json.Unmarshal(b, &st); err != nil {
			return err
		}
		s.state = st
		return nil
	})
	if s.state == nil {
		s.state = map[string]*zoneState{}
	}
}

// save writes the state file whole, durably (statefile.Write: fsync,
// rename, the last copy kept as .prev).
func (s *Server) save() {
	f := s.stateFile()
	if f == "" {
		return
	}
	b, _ := json.Marshal(s.state)
	if err := statefile.Write(f, b); err != nil {
		s.opts.Log.Warn("cannot write the transfer state file", "file", f, "error", err)
	}
}

// parseTransfer parses a transfer: setting given as text (the catalog's).
func parseTransfer(allow, notify []string) (*zones.Transfer, error) {
	tr := &zones.Transfer{}
	for _, a := range allow {
		if len(a) > 4 && a[:4] == "key:" {
			tr.Keys = append(tr.Keys, dns.CanonicalName(a[4:]))
			continue
		}
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return nil, err
		}
		tr.Allow = append(tr.Allow, p.Masked())
	}
	for _, n := range notify {
		ap, err := netip.ParseAddrPort(n)
		if err != nil {
			return nil, err
		}
		tr.Notify = append(tr.Notify, ap)
	}
	return tr, nil
}
