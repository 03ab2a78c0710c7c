package zones

import (
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/geodns/geodns/internal/statefile"
)

// SerialFile is the SerialSource of a single server with a state
// directory. It keeps each zone's last content hash and automatic serial
// in a file, so that a restart numbers a zone as a reload does: the same
// content keeps its serial, and new content comes after the last one even
// when its file is older (rsync -a, cp -p) or changed twice in a second.
// Without it a restart went back to the file's time, below what the
// secondaries and caches already held. The file has the cluster's
// serials.json form, so a node can move between the two.
type SerialFile struct {
	path string
	log  *slog.Logger

	wmu   sync.Mutex // one write at a time, each of the latest map
	mu    sync.Mutex
	kept  map[string]keptSerial // by origin
	dirty bool
	timer *time.Timer
}

type keptSerial struct {
	Hash   string `json:"hash"` // hex
	Serial uint32 `json:"serial"`
}

// serialWriteDelay coalesces the writes of a burst of loads (thousands of
// zones at start): one write of the whole file each, not one per zone.
const serialWriteDelay = 200 * time.Millisecond

// OpenSerialFile loads the serials kept in path (none if it is missing;
// a corrupt one is set aside as statefile.Load does).
func OpenSerialFile(path string, log *slog.Logger) *SerialFile {
	f := &SerialFile{path: path, log: log, kept: map[string]keptSerial{}}
	statefile.Load(path, "zone serials", log, func(b []byte) error {
		m := map[string]keptSerial{}
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		f.kept = m
		return nil
	})
	return f
}

// Serial implements SerialSource: the serial kept for this content, else
// want moved past the serial kept for the zone's last content.
func (f *SerialFile) Serial(origin string, hash [32]byte, want, prev uint32, moved bool) (uint32, bool) {
	h := hex.EncodeToString(hash[:])
	f.mu.Lock()
	defer f.mu.Unlock()
	k, ok := f.kept[origin]
	if ok && k.Hash == h {
		return k.Serial, true
	}
	if ok && !serialAfter(want, k.Serial) {
		want = k.Serial + 1
	}
	f.keepLocked(origin, h, want)
	return want, true
}

// Kept returns the serial kept for origin's content of hash hash (hex).
func (f *SerialFile) Kept(origin, hash string) (uint32, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, ok := f.kept[origin]
	return k.Serial, ok && k.Hash == hash
}

// Keep records serial as that of origin's content of hash hash (hex):
// the cluster's cache of what etcd gave, in the same file form.
func (f *SerialFile) Keep(origin, hash string, serial uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.kept[origin] != (keptSerial{hash, serial}) {
		f.keepLocked(origin, hash, serial)
	}
}

// keepLocked records a serial and has the file written soon.
func (f *SerialFile) keepLocked(origin, hash string, serial uint32) {
	f.kept[origin] = keptSerial{hash, serial}
	if !f.dirty {
		f.dirty = true
		f.timer = time.AfterFunc(serialWriteDelay, f.write)
	}
}

// Flush writes what is not on disk yet, and waits for a write under way
// (at shutdown).
func (f *SerialFile) Flush() {
	f.mu.Lock()
	if f.timer != nil {
		f.timer.Stop()
	}
	dirty := f.dirty
	f.mu.Unlock()
	if dirty {
		f.write()
		return
	}
	f.wmu.Lock() // a write that took the map already holds it
	f.wmu.Unlock()
}

func (f *SerialFile) write() {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	f.mu.Lock()
	b, _ := json.Marshal(f.kept)
	f.dirty = false
	f.mu.Unlock()
	if err := statefile.Write(f.path, b); err != nil {
		f.log.Warn("zone serials not kept: a restart may number zones from their files' times", "file", f.path, "error", err)
	}
}
