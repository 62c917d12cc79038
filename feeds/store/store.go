package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Errors returned by the store, wrapped with context; test with errors.Is.
var (
	ErrLocked        = errors.New("store directory is in use by another store")
	ErrOutOfOrder    = errors.New("message out of order")
	ErrDuplicate     = errors.New("message already stored")
	ErrNotFound      = errors.New("not found")
	ErrCorrupt       = errors.New("store corrupt")
	ErrClosed        = errors.New("store closed")
	ErrInvalidRecord = errors.New("invalid record")
)

// Options configures Open. The zero value is usable.
type Options struct {
	// Logger receives store events; Pebble's informational messages are
	// logged at Debug level. Nil discards everything.
	Logger *slog.Logger
	// CacheSize is Pebble's block cache size in bytes; 0 means 64 MiB.
	CacheSize int64
	// MemTableSize is Pebble's memtable size in bytes; 0 means 32 MiB.
	MemTableSize uint64
	// Indexers are the views kept in the append batch (see Indexer). An
	// indexer whose stored version differs from its Version is rebuilt
	// from the log by Open, with progress logged.
	Indexers []Indexer
	// KeysCoverSequence says that every record's Key is a hash over its
	// Author and Sequence (true of SSB message ids): a key can then only
	// repeat where the sequence check already fails, so Append skips the
	// by-key lookup per record (a quarter of the CPU of replication in
	// profiles). Repeats within one call are still refused.
	KeysCoverSequence bool
	// Rebuild names indexers that Open rebuilds from the log even when
	// their stored version is current (sbot reindex).
	Rebuild []string
	// RebuildProgress, when set, is called after each record staged by a
	// rebuild at Open with the records done and the log's length.
	RebuildProgress func(done, total int64)
	// FS is the filesystem Pebble's files live on (nil: the OS's). The
	// directory lock stays on the OS's filesystem in dir. Simulations pass
	// a crash-simulating in-memory one (vfs.NewCrashableMem) to kill a
	// node without losing anything but what it had not synced.
	FS vfs.FS
}

// Store is an open message store. All methods are safe for concurrent use.
type Store struct {
	dir  string
	log  *slog.Logger
	db   *pebble.DB
	lock *dirLock

	indexers     []Indexer
	rebuild      map[string]bool
	progress     func(done, total int64)
	keysCoverSeq bool
	writeMu      sync.Mutex    // serializes Append
	writer       *groupWriter  // guarded by writeMu
	quit         chan struct{} // closed by Close: refuse appends, end live readers

	lastSeq atomic.Int64                  // receive seq of the log tail (committed)
	notify  atomic.Pointer[chan struct{}] // closed and replaced after every commit

	// holes counts the receive seqs below the log tail that hold no record
	// because Fsck quarantined it; set by Open, constant after.
	holes int64

	mu    sync.RWMutex // guards heads
	heads map[feeds.FeedRef]FeedLatest

	closeMu   sync.RWMutex // readers hold R while using db; Close holds W
	closed    bool
	closeOnce sync.Once
}

// Open opens (creating if needed) the store in dir. Only one Store, in this
// or any other process, may have dir open at a time; a second Open fails
// with an error wrapping ErrLocked that names the holder's pid.
func Open(dir string, opts Options) (*Store, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open store at %s: %w", dir, err)
	}
	lk, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open store at %s: %w", dir, err)
	}
	s := &Store{
		dir:          dir,
		log:          logger,
		lock:         lk,
		indexers:     opts.Indexers,
		rebuild:      map[string]bool{},
		progress:     opts.RebuildProgress,
		keysCoverSeq: opts.KeysCoverSequence,
		quit:         make(chan struct{}),
		heads:        make(map[feeds.FeedRef]FeedLatest),
	}
	s.writer = &groupWriter{
		s:           s,
		pending:     make(map[feeds.FeedRef]FeedLatest),
		pendingKeys: make(map[feeds.MessageRef]struct{}),
		reqHeads:    make(map[feeds.FeedRef]FeedLatest),
		reqKeys:     make(map[feeds.MessageRef]struct{}),
	}
	if err := checkIndexers(s.indexers); err != nil {
		lk.release()
		return nil, fmt.Errorf("open store at %s: %w", dir, err)
	}
	for _, name := range opts.Rebuild {
		if !slices.ContainsFunc(s.indexers, func(ix Indexer) bool { return ix.Name() == name }) {
			lk.release()
			return nil, fmt.Errorf("open store at %s: rebuild: no index named %q", dir, name)
		}
		s.rebuild[name] = true
	}
	po := &pebble.Options{
		CacheSize:          opts.CacheSize,
		MemTableSize:       opts.MemTableSize,
		Logger:             pebbleLogger{logger},
		FormatMajorVersion: pebble.FormatNewest,
		FS:                 opts.FS,
	}
	if po.CacheSize == 0 {
		po.CacheSize = 64 << 20
	}
	if po.MemTableSize == 0 {
		po.MemTableSize = 32 << 20
	}
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(filepath.Join(dir, "pebble"), po)
	if err != nil {
		lk.release()
		return nil, fmt.Errorf("open store at %s: pebble: %w", dir, err)
	}
	s.db = db
	if err := s.recover(); err != nil {
		_ = db.Close()
		lk.release()
		return nil, fmt.Errorf("open store at %s: %w", dir, err)
	}
	ch := make(chan struct{})
	s.notify.Store(&ch)
	if err := s.openIndexes(); err != nil {
		_ = db.Close()
		lk.release()
		return nil, fmt.Errorf("open store at %s: %w", dir, err)
	}
	return s, nil
}

// recover checks the format version, reconciles the meta tail with the log
// tail and loads the feed heads.
func (s *Store) recover() error {
	last, err := s.logTail()
	if err != nil {
		return err
	}
	vers, err := s.getSeqValue(keyMetaVers, "format version")
	switch {
	case errors.Is(err, ErrNotFound):
		if last != 0 {
			return fmt.Errorf("%w: log has %d records but no format version", ErrCorrupt, last)
		}
		if err := s.db.Set(keyMetaVers, u64(storeVersion), pebble.Sync); err != nil {
			return fmt.Errorf("write format version: %w", err)
		}
	case err != nil:
		return err
	case vers != storeVersion:
		return fmt.Errorf("unsupported store format version %d (this build reads %d)", vers, storeVersion)
	}
	meta, err := s.getSeqValue(keyMetaLast, "meta last seq")
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if meta != last {
		s.log.Warn("store meta disagrees with the log tail; rewriting it from the log",
			"dir", s.dir, "meta_last", meta, "log_tail", last)
		if err := s.db.Set(keyMetaLast, u64(last), pebble.Sync); err != nil {
			return fmt.Errorf("rewrite meta last seq: %w", err)
		}
	}
	s.lastSeq.Store(last)
	if last > 0 {
		if _, err := s.getRecord(last); err != nil {
			return fmt.Errorf("read log tail: %w", err)
		}
	}
	if s.holes, err = s.quarantinedHoles(last); err != nil {
		return err
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefixHead, UpperBound: prefixEnd(prefixHead)})
	if err != nil {
		return fmt.Errorf("load feed heads: %w", err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != len(prefixHead)+32 {
			return fmt.Errorf("%w: head key of %d bytes", ErrCorrupt, len(k))
		}
		var a feeds.FeedRef
		copy(a[:], k[len(prefixHead):])
		h, err := decodeHead(a, it.Value())
		if err != nil {
			return err
		}
		if h.Seq > last {
			return fmt.Errorf("%w: head of %s points at seq %d beyond the log tail %d", ErrCorrupt, a, h.Seq, last)
		}
		s.heads[a] = h
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("load feed heads: %w", err)
	}
	return nil
}

// quarantinedHoles counts the distinct receive seqs, at most last, that
// Fsck quarantined (x/corrupt/<seq>…) and that the log no longer holds. A
// quarantined torn tail whose seq a later append reused is no hole.
func (s *Store) quarantinedHoles(last int64) (int64, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefixCorrupt, UpperBound: prefixEnd(prefixCorrupt)})
	if err != nil {
		return 0, fmt.Errorf("count quarantined records: %w", err)
	}
	defer it.Close()
	var holes int64
	prev := int64(-1)
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) < len(prefixCorrupt)+8 {
			continue // not written by Fsck; nothing reads it
		}
		seq := int64(binary.BigEndian.Uint64(k[len(prefixCorrupt):]))
		if seq == prev || seq < 1 || seq > last {
			continue
		}
		prev = seq
		_, closer, err := s.db.Get(logKey(nil, seq))
		switch {
		case errors.Is(err, pebble.ErrNotFound):
			holes++
		case err != nil:
			return 0, fmt.Errorf("count quarantined records: read seq %d: %w", seq, err)
		default:
			closer.Close()
		}
	}
	if err := it.Error(); err != nil {
		return 0, fmt.Errorf("count quarantined records: %w", err)
	}
	return holes, nil
}

// logTail returns the receive seq of the last log record, 0 if the log is empty.
func (s *Store) logTail() (int64, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefixLog, UpperBound: prefixEnd(prefixLog)})
	if err != nil {
		return 0, fmt.Errorf("find log tail: %w", err)
	}
	defer it.Close()
	if !it.Last() {
		return 0, it.Error()
	}
	k := it.Key()
	if len(k) != logKeyLength {
		return 0, fmt.Errorf("%w: log key of %d bytes", ErrCorrupt, len(k))
	}
	return decodeSeqValue("log key", k[len(prefixLog):])
}

func (s *Store) getSeqValue(key []byte, what string) (int64, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", what, err)
	}
	defer closer.Close()
	return decodeSeqValue(what, v)
}

// Close stops accepting appends (running ones finish first), ends live
// readers with ErrClosed, and closes the database and the directory lock.
// A second Close returns ErrClosed.
func (s *Store) Close() error {
	err := ErrClosed
	s.closeOnce.Do(func() {
		close(s.quit)
		s.closeMu.Lock() // waits for running appends and reads
		s.closed = true
		err = s.db.Close()
		s.closeMu.Unlock()
		if lerr := s.lock.release(); err == nil {
			err = lerr
		}
		if err != nil {
			err = fmt.Errorf("close store at %s: %w", s.dir, err)
		}
	})
	return err
}

// Dir returns the directory the store was opened in.
func (s *Store) Dir() string { return s.dir }

// LastSeq returns the receive sequence of the newest record (0 if empty).
func (s *Store) LastSeq() int64 { return s.lastSeq.Load() }

// Count returns the number of stored messages and of feeds with at least
// one. Receive seqs whose record Fsck quarantined are not counted.
func (s *Store) Count() (messages int64, feedCount int64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lastSeq.Load() - s.holes, int64(len(s.heads))
}

// Latest returns the latest sequence and message id of author; ok is false
// if the store has no message of author.
func (s *Store) Latest(author feeds.FeedRef) (seq int64, key feeds.MessageRef, ok bool, err error) {
	s.mu.RLock()
	h, ok := s.heads[author]
	s.mu.RUnlock()
	if !ok {
		if s.isClosed() {
			return 0, key, false, ErrClosed
		}
		return 0, key, false, nil
	}
	return h.Sequence, h.Key, true, nil
}

func (s *Store) isClosed() bool {
	select {
	case <-s.quit:
		return true
	default:
		return false
	}
}

// withDB runs fn while the database is guaranteed open.
func (s *Store) withDB(fn func() error) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return fn()
}

// waitAppend blocks until a commit after the call to s.notify.Load that
// produced ch, or ctx is done, or the store closes.
func (s *Store) waitAppend(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.quit:
		return ErrClosed
	}
}

// pebbleLogger adapts slog to Pebble's logger interface.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf must not return (Pebble's contract); the store cannot continue.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "pebble", "fatal", true)
	panic("pebble: " + msg)
}

// maxSeq is the largest receive sequence bound.
const maxSeq = math.MaxInt64
