package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Indexer is a view derived from the log that the store keeps in the same
// Pebble batch as the append, so that it can never disagree with the log
// after a crash. Each indexer owns the keys under "i/<Name>/" and a stored
// version (key "m/index/<Name>"); when the stored version differs from
// Version (or is absent), Open deletes its keys and rebuilds it from the
// whole log, logging progress.
//
// The store calls Stage, Commit and Abort from one goroutine at a time
// (appends are serialized); the indexer guards its in-memory state against
// its own concurrent readers.
type Indexer interface {
	// Name is the index's key prefix component ([a-z0-9_-]+).
	Name() string
	// Version is the on-disk format version of the index; change it to
	// have every store rebuild the index at its next Open.
	Version() uint64
	// Reset forgets all in-memory state (before a rebuild or a load).
	Reset()
	// Load reads the index's persisted keys at Open. Keys passed to fn
	// are relative to the index prefix and valid only during the call.
	Load(scan func(fn func(key, value []byte) error) error) error
	// Stage applies rec to pending state and writes the keys it changes
	// into w. The record's Value is valid only during the call.
	Stage(w *IndexWriter, rec *Record) error
	// Commit makes the staged state visible: the batch is durable.
	Commit()
	// Abort drops the staged state: the batch was not written.
	Abort()
}

// Preparer is an optional interface of an Indexer. A rebuild reads the
// log in chunks and hands each chunk to every Preparer before it stages
// the chunk's records one by one, from another goroutine and while it
// stages the previous chunk, so per-record work (parsing, decryption)
// can run ahead on every core. Prepare must be safe to call concurrently
// with Stage; recs are not changed until their Stage.
type Preparer interface {
	Prepare(recs []Record)
}

// IndexWriter writes one indexer's keys into the append batch.
type IndexWriter struct {
	b      *pebble.Batch
	prefix []byte
	buf    []byte
}

func indexBatch(b *pebble.Batch, name string) *IndexWriter {
	return &IndexWriter{b: b, prefix: indexPrefix(name)}
}

// Set sets key (relative to the index prefix) to value.
func (w *IndexWriter) Set(key, value []byte) error {
	w.buf = append(append(w.buf[:0], w.prefix...), key...)
	return w.b.Set(w.buf, value, nil)
}

// Delete deletes key (relative to the index prefix).
func (w *IndexWriter) Delete(key []byte) error {
	w.buf = append(append(w.buf[:0], w.prefix...), key...)
	return w.b.Delete(w.buf, nil)
}

var (
	prefixIndex      = []byte("i/")
	prefixIndexVers  = []byte("m/index/")
	validIndexName   = regexp.MustCompile(`^[a-z0-9_-]+$`)
	rebuildBatch     = 10000           // records per rebuild batch
	prepareChunk     = 1024            // records per chunk handed to Preparers
	rebuildLogPeriod = 2 * time.Second // progress log interval
)

func indexPrefix(name string) []byte {
	p := append([]byte{}, prefixIndex...)
	p = append(p, name...)
	return append(p, '/')
}

func indexVersionKey(name string) []byte {
	return append(append([]byte{}, prefixIndexVers...), name...)
}

func checkIndexers(ixs []Indexer) error {
	seen := map[string]bool{}
	for _, ix := range ixs {
		n := ix.Name()
		if !validIndexName.MatchString(n) {
			return fmt.Errorf("index name %q: want [a-z0-9_-]+", n)
		}
		if seen[n] {
			return fmt.Errorf("index %q registered twice", n)
		}
		seen[n] = true
	}
	return nil
}

// openIndexes rebuilds the indexers whose stored version differs (or
// that Options.Rebuild names), all in one pass over the log, then loads
// every indexer's persisted state.
func (s *Store) openIndexes() error {
	var stale []Indexer
	var stored []string
	for _, ix := range s.indexers {
		vers, err := s.getSeqValue(indexVersionKey(ix.Name()), "index "+ix.Name()+" version")
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if err == nil && uint64(vers) == ix.Version() && !s.rebuild[ix.Name()] {
			continue
		}
		st := "none"
		if err == nil {
			st = fmt.Sprint(vers)
		}
		stale = append(stale, ix)
		stored = append(stored, st)
	}
	if len(stale) > 0 {
		if err := s.rebuildIndexes(stale, stored); err != nil {
			return err
		}
	}
	for _, ix := range s.indexers {
		ix.Reset()
		prefix := indexPrefix(ix.Name())
		err := ix.Load(func(fn func(k, v []byte) error) error {
			snap := s.db.NewSnapshot()
			defer snap.Close()
			return scan(snap, prefix, func(k, v []byte) error { return fn(k[len(prefix):], v) })
		})
		if err != nil {
			return fmt.Errorf("load index %s: %w", ix.Name(), err)
		}
	}
	return nil
}

// rebuildIndexes deletes the keys of ixs and stages every log record into
// each of them, in batches, in one pass over the log; the version keys are
// written last, so a crash during a rebuild leads to another rebuild at
// the next Open.
func (s *Store) rebuildIndexes(ixs []Indexer, stored []string) error {
	names := make([]string, len(ixs))
	for i, ix := range ixs {
		names[i] = ix.Name()
		s.log.Info("rebuilding index", "index", ix.Name(), "stored_version", stored[i], "version", ix.Version(), "records", s.lastSeq.Load())
	}
	total := s.lastSeq.Load()
	start := time.Now()
	writers := make([]*IndexWriter, len(ixs))
	b := s.db.NewBatch()
	defer func() { b.Close() }()
	// The old keys go in one range deletion per index, flushed at once:
	// Pebble then drops the tables they cover whole without rewriting
	// them (a delete-only compaction) instead of merging the old keys
	// into the compactions of the new ones.
	for i, ix := range ixs {
		prefix := indexPrefix(ix.Name())
		if err := b.DeleteRange(prefix, prefixEnd(prefix), nil); err != nil {
			return fmt.Errorf("rebuild index %s: delete old keys: %w", ix.Name(), err)
		}
		ix.Reset()
		writers[i] = &IndexWriter{b: b, prefix: prefix}
	}
	if err := s.db.Apply(b, pebble.Sync); err != nil {
		return fmt.Errorf("rebuild indexes %v: delete old keys: %w", names, err)
	}
	b.Reset()
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("rebuild indexes %v: flush: %w", names, err)
	}
	abort := func() {
		for _, ix := range ixs {
			ix.Abort()
		}
	}
	inBatch := 0
	flush := func(sync *pebble.WriteOptions) error {
		if err := s.db.Apply(b, sync); err != nil {
			abort()
			return fmt.Errorf("rebuild indexes %v: write: %w", names, err)
		}
		for _, ix := range ixs {
			ix.Commit()
		}
		b.Reset()
		inBatch = 0
		return nil
	}
	lastLog := time.Now()
	var done int64
	chunks, stop := s.prepareChunks(ixs)
	defer stop()
	for c := range chunks {
		if c.err != nil {
			abort()
			return fmt.Errorf("rebuild indexes %v: %w", names, c.err)
		}
		for ri := range c.recs {
			rec := &c.recs[ri]
			for i, ix := range ixs {
				if err := ix.Stage(writers[i], rec); err != nil {
					abort()
					return fmt.Errorf("rebuild index %s: record %d: %w", ix.Name(), rec.Seq, err)
				}
			}
			done++
			inBatch++
			if inBatch == rebuildBatch {
				if err := flush(pebble.NoSync); err != nil {
					return err
				}
			}
			if s.progress != nil {
				s.progress(done, total)
			}
		}
		if time.Since(lastLog) >= rebuildLogPeriod {
			lastLog = time.Now()
			s.log.Info("rebuilding indexes", "indexes", names, "done", done, "records", total,
				"percent", fmt.Sprintf("%.1f", 100*float64(done)/float64(max(total, 1))))
		}
	}
	for _, ix := range ixs {
		if err := b.Set(indexVersionKey(ix.Name()), u64(int64(ix.Version())), nil); err != nil {
			return fmt.Errorf("rebuild index %s: stage version: %w", ix.Name(), err)
		}
	}
	if err := flush(pebble.Sync); err != nil {
		return err
	}
	for _, ix := range ixs {
		s.log.Info("index rebuilt", "index", ix.Name(), "records", done, "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// logChunk is a chunk of log records for a rebuild, or the error that
// ended the read.
type logChunk struct {
	recs []Record
	err  error
}

// prepareChunks reads the whole log in chunks on another goroutine,
// hands each chunk to the Preparers among ixs and sends it on, at most
// two chunks ahead of the reader of the channel. stop ends the goroutine
// and waits for it; the channel is closed after the last chunk.
func (s *Store) prepareChunks(ixs []Indexer) (<-chan logChunk, func()) {
	var preparers []Preparer
	for _, ix := range ixs {
		if p, ok := ix.(Preparer); ok {
			preparers = append(preparers, p)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan logChunk, 2)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		defer close(ch)
		send := func(c logChunk) bool {
			if c.err == nil {
				for _, p := range preparers {
					p.Prepare(c.recs)
				}
			}
			select {
			case ch <- c:
				return true
			case <-ctx.Done():
				return false
			}
		}
		buf := make([]Record, 0, prepareChunk)
		for rec, err := range s.Log(ctx, LogQuery{Old: true}) {
			if err != nil {
				send(logChunk{err: err})
				return
			}
			buf = append(buf, rec)
			if len(buf) == prepareChunk {
				if !send(logChunk{recs: buf}) {
					return
				}
				buf = make([]Record, 0, prepareChunk)
			}
		}
		if len(buf) > 0 {
			send(logChunk{recs: buf})
		}
	}()
	return ch, func() {
		cancel()
		<-exited
	}
}
