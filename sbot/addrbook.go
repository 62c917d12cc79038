package sbot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/cask-ssb/cask/feeds"
)

// The address book: every address the node knows a peer by, where it
// learnt it (the sources below), and how dialling it went (last seen,
// last failure, failures in a row, the earliest next dial). The scheduler
// (sched.go) picks from it; the keepers (conns_keep.go) dial the
// configured and remembered ones. It is kept in REPO/peers.json:
//
//	{"version":2,"peers":[{"address":"net:HOST:PORT~shs:KEY","sources":["remembered"],
//	  "lastSeen":1700000000000,"lastFailure":0,"failures":0,"lastError":""}]}
//
// Version 1 (no version field, `{"peers":[{"address":…}]}`, written by
// `sbot connect --remember` before the book existed) is read as a list of
// remembered peers and rewritten as version 2 at the next save.

// Sources of a known address.
const (
	SourceConfig     = "config"     // --peers
	SourceRemembered = "remembered" // sbot connect --remember
	SourcePub        = "pub"        // a `pub` message in a feed we follow
	SourceRoom       = "room"       // an attendant of a room we joined (tunnel address)
	SourceSeen       = "seen"       // an address we dialled successfully
)

// peersFileVersion is the version of REPO/peers.json this code writes.
const peersFileVersion = 2

// maxKnown bounds the address book: pub messages are written by others.
const maxKnown = 1000

// knownAddr is one address of the book.
type knownAddr struct {
	addr    feeds.Address
	sources map[string]bool
	// lastSeen is when a connection through this address was last up
	// (zero: never); lastFailure when a dial of it last failed.
	lastSeen, lastFailure time.Time
	lastError             string
	failures              int       // dials failed in a row (or connections that ended at once)
	next                  time.Time // not dialled by the scheduler before this
	dials                 int       // dials since the daemon started
	paused                bool      // the owner disconnected this peer: not dialled until a connect
}

func (k *knownAddr) sourceList() []string {
	return slices.Sorted(maps.Keys(k.sources))
}

// persisted: remembered and pub addresses, and the ones that worked;
// never tunnel addresses (valid only while the attendant is present).
func (k *knownAddr) persisted() bool {
	if k.addr.Transport == feeds.TransportTunnel {
		return false
	}
	return k.sources[SourceRemembered] || k.sources[SourcePub] || k.sources[SourceSeen] || !k.lastSeen.IsZero()
}

// addrBook is the address book. It is safe for concurrent use.
type addrBook struct {
	repo string
	me   feeds.FeedRef

	mu      sync.Mutex
	entries map[string]*knownAddr // by address (feeds.Address.String)
	dirty   bool
	saved   time.Time
	// fileMu serialises writes of REPO/peers.json (the repo lock keeps
	// other processes out).
	fileMu sync.Mutex
}

func newAddrBook(repo string, me feeds.FeedRef) *addrBook {
	return &addrBook{repo: repo, me: me, entries: map[string]*knownAddr{}}
}

// peersFile is the JSON of REPO/peers.json.
type peersFile struct {
	Version int         `json:"version,omitempty"`
	Peers   []peerEntry `json:"peers"`
}

type peerEntry struct {
	Address     string   `json:"address"`
	Sources     []string `json:"sources,omitempty"`
	LastSeen    int64    `json:"lastSeen,omitempty"`    // ms since epoch
	LastFailure int64    `json:"lastFailure,omitempty"` // ms since epoch
	Failures    int      `json:"failures,omitempty"`
	LastError   string   `json:"lastError,omitempty"`
}

func peersFilePath(repo string) string { return filepath.Join(repo, "peers.json") }

// readPeersFile reads REPO/peers.json, migrating version 1. A missing
// file is an empty book.
func readPeersFile(repo string) (peersFile, error) {
	var f peersFile
	path := peersFilePath(repo)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return peersFile{Version: peersFileVersion}, nil
	}
	if err != nil {
		return f, fmt.Errorf("read known peers: %w", err)
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return f, fmt.Errorf("read known peers %s: %w", path, err)
	}
	switch f.Version {
	case 0, 1:
		// Version 1: every entry is a peer the owner remembered.
		for i := range f.Peers {
			f.Peers[i].Sources = []string{SourceRemembered}
		}
		f.Version = peersFileVersion
	case peersFileVersion:
	default:
		return f, fmt.Errorf("read known peers %s: version %d is newer than this sbot understands (%d); upgrade sbot or move the file away", path, f.Version, peersFileVersion)
	}
	return f, nil
}

func writePeersFile(repo string, f peersFile) error {
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	path := peersFilePath(repo)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write known peers: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write known peers: %w", err)
	}
	return nil
}

// load reads REPO/peers.json into the book. An entry that does not parse
// is an error: the file is not rewritten, so nothing in it is lost.
func (b *addrBook) load() error {
	f, err := readPeersFile(b.repo)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range f.Peers {
		a, err := feeds.ParseAddress(p.Address)
		if err != nil {
			return fmt.Errorf("%s: %w", peersFilePath(b.repo), err)
		}
		k := b.addLocked(a)
		if k == nil {
			continue
		}
		for _, s := range p.Sources {
			k.sources[s] = true
		}
		if p.LastSeen > 0 {
			k.lastSeen = time.UnixMilli(p.LastSeen)
		}
		if p.LastFailure > 0 {
			k.lastFailure = time.UnixMilli(p.LastFailure)
		}
		k.failures, k.lastError = p.Failures, p.LastError
	}
	return nil
}

// save writes the book to REPO/peers.json.
func (b *addrBook) save(now time.Time) error {
	b.fileMu.Lock()
	defer b.fileMu.Unlock()
	b.mu.Lock()
	f := peersFile{Version: peersFileVersion, Peers: []peerEntry{}}
	for _, k := range b.entries {
		if !k.persisted() {
			continue
		}
		e := peerEntry{Address: k.addr.String(), Failures: k.failures, LastError: k.lastError}
		for _, s := range k.sourceList() {
			if s != SourceConfig && s != SourceRoom {
				e.Sources = append(e.Sources, s)
			}
		}
		if !k.lastSeen.IsZero() {
			e.LastSeen = k.lastSeen.UnixMilli()
		}
		if !k.lastFailure.IsZero() {
			e.LastFailure = k.lastFailure.UnixMilli()
		}
		f.Peers = append(f.Peers, e)
	}
	b.dirty = false
	b.saved = now
	b.mu.Unlock()
	sort.Slice(f.Peers, func(i, j int) bool { return f.Peers[i].Address < f.Peers[j].Address })
	return writePeersFile(b.repo, f)
}

// saveIfDue saves a changed book at most every interval.
func (b *addrBook) saveIfDue(now time.Time, interval time.Duration) error {
	b.mu.Lock()
	due := b.dirty && now.Sub(b.saved) >= interval
	b.mu.Unlock()
	if !due {
		return nil
	}
	return b.save(now)
}

// addLocked returns the entry of a, adding it if there is room.
func (b *addrBook) addLocked(a feeds.Address) *knownAddr {
	if a.Key == b.me {
		return nil
	}
	key := a.String()
	if k := b.entries[key]; k != nil {
		return k
	}
	if len(b.entries) >= maxKnown && !b.evictLocked() {
		return nil
	}
	k := &knownAddr{addr: a, sources: map[string]bool{}}
	b.entries[key] = k
	b.dirty = true
	return k
}

// evictLocked makes room in a full book: it drops the entry that never
// worked with the most failures among those no owner or config named.
func (b *addrBook) evictLocked() bool {
	var victim string
	worst := -1
	for key, k := range b.entries {
		if k.sources[SourceRemembered] || k.sources[SourceConfig] || !k.lastSeen.IsZero() {
			continue
		}
		if k.failures > worst {
			victim, worst = key, k.failures
		}
	}
	if victim == "" {
		return false
	}
	delete(b.entries, victim)
	return true
}

// AddKnown adds an address the node learnt from source (one of the
// Source constants); it reports whether the book has it now (false for
// our own address, or a full book).
func (b *addrBook) AddKnown(a feeds.Address, source string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := b.addLocked(a)
	if k == nil {
		return false
	}
	if !k.sources[source] {
		k.sources[source] = true
		b.dirty = true
	}
	return true
}

// dropSource removes source from the entries of peer (every one, when
// peer is zero) that have it, and the entries left with no source that
// never worked.
func (b *addrBook) dropSource(source string, keep func(a feeds.Address) bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for key, k := range b.entries {
		if !k.sources[source] || (keep != nil && keep(k.addr)) {
			continue
		}
		delete(k.sources, source)
		b.dirty = true
		if len(k.sources) == 0 && k.lastSeen.IsZero() {
			delete(b.entries, key)
		}
	}
}

// remembered returns the addresses with source remembered.
func (b *addrBook) withSource(source string) []feeds.Address {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []feeds.Address
	for _, k := range b.entries {
		if k.sources[source] {
			out = append(out, k.addr)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// forget removes every address of id from the book (sbot disconnect
// --forget); it reports whether one was remembered.
func (b *addrBook) forget(id feeds.FeedRef) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	found := false
	for key, k := range b.entries {
		if k.addr.Key == id {
			found = found || k.sources[SourceRemembered]
			delete(b.entries, key)
			b.dirty = true
		}
	}
	return found
}

// rememberOnly makes a the one remembered address of its peer.
func (b *addrBook) rememberOnly(a feeds.Address) {
	b.dropSource(SourceRemembered, func(old feeds.Address) bool { return old.Key != a.Key || old == a })
	b.AddKnown(a, SourceRemembered)
}

// dialled records the outcome of a dial of a. A successful dial makes a
// a "seen" address; a failed one counts a failure and sets the next dial
// back (backoff gives the wait for the failures in a row).
func (b *addrBook) dialled(a feeds.Address, err error, now time.Time, backoff func(failures int) time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := b.addLocked(a)
	if k == nil {
		return
	}
	k.dials++
	b.dirty = true
	if err == nil {
		k.sources[SourceSeen] = true
		k.lastSeen, k.failures, k.lastError = now, 0, ""
		return
	}
	k.failures++
	k.lastFailure, k.lastError = now, err.Error()
	k.next = now.Add(backoff(k.failures))
}

// connEnded records that a connection with peer ended after lasting
// for d: the peer's addresses were seen until now; one that ended
// within short counts as a failure (a full peer, a refused tunnel), so
// it backs off like a failed dial; otherwise the next dial waits rest.
func (b *addrBook) connEnded(peer feeds.FeedRef, d, short time.Duration, now time.Time, why string, backoff func(failures int) time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range b.entries {
		if k.addr.Key != peer || k.lastSeen.IsZero() {
			continue
		}
		k.lastSeen = now
		b.dirty = true
		if d < short {
			k.failures++
			k.lastFailure, k.lastError = now, "connection ended after "+d.Round(time.Second).String()+": "+why
			k.next = later(k.next, now.Add(backoff(k.failures)))
		} else {
			k.next = later(k.next, now.Add(backoff(1)))
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// seen records that peer is connected now (whichever side dialled).
func (b *addrBook) seen(peer feeds.FeedRef, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range b.entries {
		if k.addr.Key == peer && !k.lastSeen.IsZero() {
			k.lastSeen = now
		}
	}
}

// restUntil keeps the scheduler off peer's addresses until t.
func (b *addrBook) restUntil(peer feeds.FeedRef, t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range b.entries {
		if k.addr.Key == peer && k.next.Before(t) {
			k.next = t
		}
	}
}

// setPaused pauses (the owner disconnected) or resumes (the owner
// connected) the addresses of peer.
func (b *addrBook) setPaused(peer feeds.FeedRef, paused bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range b.entries {
		if k.addr.Key == peer {
			k.paused = paused
			if !paused {
				k.next = time.Time{}
			}
		}
	}
}

// knownView is a copy of an entry, for the scheduler and reports.
type knownView struct {
	addr                  feeds.Address
	sources               []string
	lastSeen, lastFailure time.Time
	lastError             string
	failures, dials       int
	next                  time.Time
	paused                bool
}

// snapshot copies the book, sorted by address.
func (b *addrBook) snapshot() []knownView {
	b.mu.Lock()
	out := make([]knownView, 0, len(b.entries))
	for _, k := range b.entries {
		out = append(out, knownView{
			addr: k.addr, sources: k.sourceList(), lastSeen: k.lastSeen, lastFailure: k.lastFailure,
			lastError: k.lastError, failures: k.failures, dials: k.dials, next: k.next, paused: k.paused,
		})
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].addr.String() < out[j].addr.String() })
	return out
}
