package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cockroachdb/pebble/v2"
)

// ProblemKind names one kind of inconsistency Fsck reports.
type ProblemKind string

// The problems Fsck knows. Repairable ones are fixed by FsckOptions.Repair;
// log-gap and feed-sequence mean a message is gone and are only reported.
const (
	// ProblemTornTail: the last record(s) of the log do not decode (a write
	// cut short). Repair quarantines them, which truncates the log.
	ProblemTornTail ProblemKind = "torn-tail"
	// ProblemCorruptRecord: a record before the tail does not decode
	// (checksum, header or format). Repair quarantines it.
	ProblemCorruptRecord ProblemKind = "corrupt-record"
	// ProblemLogKey: a key under the log prefix is not l/<seq:8>. Repair
	// quarantines it.
	ProblemLogKey ProblemKind = "log-key"
	// ProblemLogGap: receive sequences missing from the log that were not
	// quarantined. Not repairable.
	ProblemLogGap ProblemKind = "log-gap"
	// ProblemFeedSequence: a feed's sequences do not run 1, 2, 3… in
	// receive order, and no quarantined record can explain it. Not repairable.
	ProblemFeedSequence ProblemKind = "feed-sequence"
	// ProblemIndex: the by-key or by-feed index disagrees with the log.
	// Repair rebuilds both from the log.
	ProblemIndex ProblemKind = "index"
	// ProblemHead: a feed head (h/) disagrees with the log. Repair rebuilds
	// the heads from the log.
	ProblemHead ProblemKind = "head"
	// ProblemMeta: m/last is not the log tail, or m/version is missing.
	// Repair rewrites them.
	ProblemMeta ProblemKind = "meta"
	// ProblemStaleIndex: an indexer's stored version is absent or differs
	// from FsckOptions.Indexers (Open would rebuild it). Repair drops the
	// stored version so the next Open rebuilds it.
	ProblemStaleIndex ProblemKind = "stale-index"
)

func (k ProblemKind) repairable() bool {
	return k != ProblemLogGap && k != ProblemFeedSequence
}

// Problem is one inconsistency found by Fsck.
type Problem struct {
	Kind ProblemKind `json:"kind"`
	// Seq is the receive sequence concerned, 0 when none applies.
	Seq    int64  `json:"seq,omitempty"`
	Detail string `json:"detail"`
	// Repaired is set when Repair acted on the problem.
	Repaired bool `json:"repaired"`
}

// FsckOptions configures Fsck. The zero value checks without repairing.
type FsckOptions struct {
	// Repair quarantines undecodable records and rebuilds the derived
	// keyspaces from the log; see Fsck.
	Repair bool
	// Indexers are the indexers the store is opened with; only their Name
	// and Version are used, to report stale or missing index versions.
	Indexers []Indexer
	// Progress, if set, is called from time to time with the records
	// processed so far and the total expected; total grows when a repair
	// adds passes.
	Progress func(done, total int64)
	// MaxProblems caps the problems listed in the report (each kind is
	// still counted in full); 0 means 100.
	MaxProblems int
	// Logger receives Pebble's messages; nil discards them.
	Logger *slog.Logger
}

// FsckReport is what Fsck found and did.
type FsckReport struct {
	Dir string `json:"dir"`
	// Records is the number of decodable log records, Feeds the number of
	// feeds they hold, Tail the highest receive sequence in the log (all
	// after the repair when one ran).
	Records int64 `json:"records"`
	Feeds   int   `json:"feeds"`
	Tail    int64 `json:"tail"`
	// Quarantined counts records kept under x/corrupt/ (this run's and
	// earlier ones).
	Quarantined int64 `json:"quarantined"`
	// Found counts every problem found, by kind in Counts; Problems lists
	// the first MaxProblems of them.
	Found    int                 `json:"found"`
	Counts   map[ProblemKind]int `json:"counts"`
	Problems []Problem           `json:"problems"`
	// Repaired is true when a repair ran; Left lists the problems the
	// check after the repair still found (or, without a repair, Found).
	Repaired  bool      `json:"repaired"`
	Left      int       `json:"left"`
	Remaining []Problem `json:"remaining,omitempty"`
	// IndexesToRebuild names the indexers whose stored version the repair
	// dropped: the next Open rebuilds them.
	IndexesToRebuild []string `json:"indexesToRebuild,omitempty"`
}

// Clean reports whether no problem is left.
func (r FsckReport) Clean() bool { return r.Left == 0 }

// Key prefixes of quarantined data: x/corrupt/<seq:8><unix nanos:8> holds
// the bytes of an undecodable record, x/corrupt-key/<key tail> the value
// of a malformed log key. Nothing in them is ever read back by the store.
var (
	prefixCorrupt    = []byte("x/corrupt/")
	prefixCorruptKey = []byte("x/corrupt-key/")
)

// Fsck checks the store in dir offline and, with opts.Repair, repairs what
// can be repaired. It takes the directory lock (an error wrapping ErrLocked
// names the holder when a Store or another Fsck has it open) and opens
// nothing else; dir must hold a store.
//
// The check reads the whole log: every record must decode, the log must be
// contiguous except where records were quarantined, each feed's sequences
// must run 1..n, the by-key and by-feed indexes and the feed heads must
// match the log, m/last must be the log tail and every indexer's stored
// version must match.
//
// The repair never deletes bytes: undecodable records move to
// x/corrupt/<seq> (a torn tail so truncates the log), the by-key, by-feed
// and head keyspaces and m/last are rebuilt from the log, and the stored
// versions of every indexer are dropped so the next Open rebuilds them from
// the log. A check after the repair fills Left and Remaining. Problems that
// lost a message (log-gap, feed-sequence) are reported, not repaired: the
// message has to come back from a peer.
func Fsck(ctx context.Context, dir string, opts FsckOptions) (FsckReport, error) {
	rep := FsckReport{Dir: dir, Counts: map[ProblemKind]int{}}
	if opts.MaxProblems <= 0 {
		opts.MaxProblems = 100
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	pdir := filepath.Join(dir, "pebble")
	if _, err := os.Stat(pdir); errors.Is(err, fs.ErrNotExist) {
		return rep, fmt.Errorf("fsck store at %s: no store there: %w", dir, ErrNotFound)
	} else if err != nil {
		return rep, fmt.Errorf("fsck store at %s: %w", dir, err)
	}
	lk, err := lockDir(dir)
	if err != nil {
		return rep, fmt.Errorf("fsck store at %s: %w", dir, err)
	}
	defer lk.release()
	db, err := pebble.Open(pdir, &pebble.Options{
		Logger:           pebbleLogger{logger},
		ErrorIfNotExists: true,
		CacheSize:        8 << 20,
	})
	if err != nil {
		return rep, fmt.Errorf("fsck store at %s: pebble: %w", dir, err)
	}
	defer db.Close()

	f := &fsck{ctx: ctx, db: db, opts: opts}
	res, err := f.check(opts.Indexers)
	if err != nil {
		return rep, fmt.Errorf("fsck store at %s: %w", dir, err)
	}
	rep.fill(res)
	rep.Problems = res.problems
	rep.Found = res.found
	rep.Counts = res.counts
	rep.Left = res.found
	if !opts.Repair || res.found == 0 {
		return rep, nil
	}
	names, err := f.repair(res)
	if err != nil {
		return rep, fmt.Errorf("fsck store at %s: repair: %w", dir, err)
	}
	rep.Repaired = true
	rep.IndexesToRebuild = names
	for i := range rep.Problems {
		rep.Problems[i].Repaired = rep.Problems[i].Kind.repairable()
	}
	// The indexers' versions were dropped on purpose: the recheck does not
	// report them as stale.
	after, err := f.check(nil)
	if err != nil {
		return rep, fmt.Errorf("fsck store at %s: check after repair: %w", dir, err)
	}
	rep.fill(after)
	rep.Left = after.found
	rep.Remaining = after.problems
	return rep, nil
}

func (r *FsckReport) fill(res *fsckResult) {
	r.Records = res.records
	r.Feeds = len(res.heads)
	r.Tail = res.tail
	r.Quarantined = int64(len(res.quarantined)) + res.quarantinedKeys
}

// fsck is one run over an open database that nobody else writes.
type fsck struct {
	ctx  context.Context
	db   *pebble.DB
	opts FsckOptions
	done int64 // records processed, for Progress
	// total is the work expected, for Progress.
	total int64
}

// badRecord is an undecodable log record or a malformed log key.
type badRecord struct {
	key   []byte // the full Pebble key
	seq   int64  // 0 for a malformed key
	value []byte
}

type fsckResult struct {
	problems        []Problem
	found           int
	counts          map[ProblemKind]int
	limit           int
	records         int64
	tail            int64 // highest log key seq, decodable or not
	goodTail        int64 // highest decodable record
	heads           map[feeds.FeedRef]FeedLatest
	quarantined     map[int64]bool
	quarantinedKeys int64
	bad             []badRecord // to quarantine
	badSeqs         map[int64]bool
	rebuildVersions []string // indexers whose version is stale
}

func (r *fsckResult) add(kind ProblemKind, seq int64, format string, args ...any) {
	r.found++
	r.counts[kind]++
	if len(r.problems) < r.limit {
		r.problems = append(r.problems, Problem{Kind: kind, Seq: seq, Detail: fmt.Sprintf(format, args...)})
	}
}

func (f *fsck) progress(n int64) {
	f.done += n
	if f.opts.Progress != nil {
		f.opts.Progress(f.done, max(f.total, f.done))
	}
}

// check reads everything and reports what disagrees. indexers (may be
// nil) are checked for stale versions.
func (f *fsck) check(indexers []Indexer) (*fsckResult, error) {
	res := &fsckResult{
		counts:      map[ProblemKind]int{},
		limit:       f.opts.MaxProblems,
		heads:       map[feeds.FeedRef]FeedLatest{},
		quarantined: map[int64]bool{},
		badSeqs:     map[int64]bool{},
	}
	if err := f.scanDB(prefixCorrupt, func(k, _ []byte) error {
		if len(k) >= len(prefixCorrupt)+8 {
			res.quarantined[int64(binary.BigEndian.Uint64(k[len(prefixCorrupt):]))] = true
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := f.scanDB(prefixCorruptKey, func(_, _ []byte) error {
		res.quarantinedKeys++
		return nil
	}); err != nil {
		return nil, err
	}
	tail, err := f.logTail()
	if err != nil {
		return nil, err
	}
	res.tail = tail
	f.total += tail
	if f.opts.Progress != nil {
		f.opts.Progress(f.done, f.total)
	}

	seed := maphash.MakeSeed()
	var keySum, feedSum uint64
	var buf []byte
	var rec Record
	var pending []badRecord // undecodable records since the last good one
	var prev int64          // previous log key seq
	unexplainedGaps := 0
	flushPending := func(kind ProblemKind) {
		for _, b := range pending {
			res.add(kind, b.seq, "record %d does not decode: %s", b.seq, decodeErr(b))
		}
		pending = pending[:0]
	}
	err = f.scanDB(prefixLog, func(k, v []byte) error {
		if len(k) != logKeyLength {
			res.add(ProblemLogKey, 0, "log key %x of %d bytes, want %d", k, len(k), logKeyLength)
			res.bad = append(res.bad, badRecord{key: clone(k), value: clone(v)})
			return nil
		}
		seq := int64(binary.BigEndian.Uint64(k[len(prefixLog):]))
		if n := seq - prev - 1; n > 0 {
			missing := int64(0)
			first := int64(0)
			for s := prev + 1; s < seq; s++ {
				if !res.quarantined[s] {
					missing++
					if first == 0 {
						first = s
					}
				}
			}
			if missing > 0 {
				unexplainedGaps++
				res.add(ProblemLogGap, first, "log jumps from seq %d to %d: %d records missing and not quarantined", prev, seq, missing)
			}
		}
		prev = seq
		f.progress(1)
		if err := decodeRecord(seq, v, &rec); err != nil {
			pending = append(pending, badRecord{key: clone(k), seq: seq, value: clone(v)})
			res.bad = append(res.bad, pending[len(pending)-1])
			return nil
		}
		flushPending(ProblemCorruptRecord)
		res.records++
		res.goodTail = seq
		h := res.heads[rec.Author]
		if rec.Sequence != h.Sequence+1 {
			// A quarantined record (or one quarantined now) may have
			// been the missing message; a sequence going back cannot be.
			explained := rec.Sequence > h.Sequence+1 && (len(res.quarantined) > 0 || len(res.bad) > 0)
			if !explained {
				res.add(ProblemFeedSequence, seq, "feed %s: sequence %d follows %d", rec.Author, rec.Sequence, h.Sequence)
			}
		}
		if rec.Sequence > h.Sequence {
			res.heads[rec.Author] = FeedLatest{Author: rec.Author, Sequence: rec.Sequence, Key: rec.Key, Seq: seq}
		}
		buf = binary.BigEndian.AppendUint64(byKeyKey(buf[:0], rec.Key), uint64(seq))
		keySum += maphash.Bytes(seed, buf)
		buf = binary.BigEndian.AppendUint64(byFeedKey(buf[:0], rec.Author, rec.Sequence), uint64(seq))
		feedSum += maphash.Bytes(seed, buf)
		return nil
	})
	if err != nil {
		return nil, err
	}
	flushPending(ProblemTornTail)
	for _, b := range res.bad {
		if b.seq != 0 {
			res.badSeqs[b.seq] = true
		}
	}

	if err := f.checkIndexes(res, seed, keySum, feedSum); err != nil {
		return nil, err
	}
	if err := f.checkHeads(res); err != nil {
		return nil, err
	}
	if err := f.checkMeta(res); err != nil {
		return nil, err
	}
	for _, ix := range indexers {
		v, err := f.getSeq(indexVersionKey(ix.Name()))
		switch {
		case errors.Is(err, ErrNotFound):
			res.add(ProblemStaleIndex, 0, "index %s has no stored version (never built, or its rebuild was cut short)", ix.Name())
		case err != nil:
			res.add(ProblemStaleIndex, 0, "index %s: stored version unreadable: %v", ix.Name(), err)
		case uint64(v) != ix.Version():
			res.add(ProblemStaleIndex, 0, "index %s: stored version %d, this build uses %d", ix.Name(), v, ix.Version())
		default:
			continue
		}
		res.rebuildVersions = append(res.rebuildVersions, ix.Name())
	}
	return res, nil
}

func decodeErr(b badRecord) error {
	var r Record
	return decodeRecord(b.seq, b.value, &r)
}

// checkIndexes compares the by-key and by-feed indexes with the log sums
// and, on a mismatch, counts the records whose entry is missing or wrong.
func (f *fsck) checkIndexes(res *fsckResult, seed maphash.Seed, keySum, feedSum uint64) error {
	var buf []byte
	for _, ix := range []struct {
		name   string
		prefix []byte
		keyLen int
		sum    uint64
	}{
		{"by-key", prefixKey, len(prefixKey) + 32, keySum},
		{"by-feed", prefixFeed, len(prefixFeed) + 32 + 8, feedSum},
	} {
		var n, malformed int64
		var sum uint64
		err := f.scanDB(ix.prefix, func(k, v []byte) error {
			if len(v) == 8 && res.badSeqs[int64(binary.BigEndian.Uint64(v))] {
				return nil // the entry of an undecodable record: reported as such
			}
			n++
			if len(k) != ix.keyLen || len(v) != 8 {
				malformed++
				return nil
			}
			buf = append(append(buf[:0], k...), v...)
			sum += maphash.Bytes(seed, buf)
			return nil
		})
		if err != nil {
			return err
		}
		if n == res.records && sum == ix.sum && malformed == 0 {
			continue
		}
		missing, wrong, first, err := f.locate(ix.prefix)
		if err != nil {
			return err
		}
		extra := n - (res.records - missing)
		res.add(ProblemIndex, first, "%s index (%q): %d entries for %d records: %d missing, %d pointing elsewhere, %d extra, %d malformed",
			ix.name, ix.prefix, n, res.records, missing, wrong, max(extra, 0), malformed)
	}
	return nil
}

// locate looks up the index entry (prefix k/ or f/) of every record.
func (f *fsck) locate(prefix []byte) (missing, wrong, first int64, err error) {
	var rec Record
	var key []byte
	err = f.scanDB(prefixLog, func(k, v []byte) error {
		if len(k) != logKeyLength {
			return nil
		}
		seq := int64(binary.BigEndian.Uint64(k[len(prefixLog):]))
		if decodeRecord(seq, v, &rec) != nil {
			return nil
		}
		if prefix[0] == prefixKey[0] {
			key = byKeyKey(key[:0], rec.Key)
		} else {
			key = byFeedKey(key[:0], rec.Author, rec.Sequence)
		}
		got, gerr := f.getSeq(key)
		switch {
		case errors.Is(gerr, ErrNotFound):
			missing++
		case gerr != nil || got != seq:
			wrong++
		default:
			return nil
		}
		if first == 0 {
			first = seq
		}
		return nil
	})
	return missing, wrong, first, err
}

func (f *fsck) checkHeads(res *fsckResult) error {
	seen := 0
	err := f.scanDB(prefixHead, func(k, v []byte) error {
		if len(k) != len(prefixHead)+32 {
			res.add(ProblemHead, 0, "head key %x of %d bytes", k, len(k))
			return nil
		}
		var a feeds.FeedRef
		copy(a[:], k[len(prefixHead):])
		want, ok := res.heads[a]
		if !ok {
			res.add(ProblemHead, 0, "head of %s, a feed with no message in the log", a)
			return nil
		}
		seen++
		h, err := decodeHead(a, v)
		if err != nil {
			res.add(ProblemHead, want.Seq, "%v", err)
			return nil
		}
		if h != want && !res.badSeqs[h.Seq] {
			res.add(ProblemHead, want.Seq, "head of %s is %d/seq %d, the log says %d/seq %d",
				a, h.Sequence, h.Seq, want.Sequence, want.Seq)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if seen == len(res.heads) {
		return nil
	}
	// Name the feeds without a head, in a stable order.
	var missing []FeedLatest
	for a, h := range res.heads {
		if _, err := f.get(headKey(nil, a)); errors.Is(err, ErrNotFound) {
			missing = append(missing, h)
		} else if err != nil {
			return err
		}
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i].Seq < missing[j].Seq })
	for _, h := range missing {
		res.add(ProblemHead, h.Seq, "feed %s (latest sequence %d) has no head", h.Author, h.Sequence)
	}
	return nil
}

func (f *fsck) checkMeta(res *fsckResult) error {
	vers, err := f.getSeq(keyMetaVers)
	switch {
	case errors.Is(err, ErrNotFound):
		if res.tail > 0 {
			res.add(ProblemMeta, 0, "no format version (m/version) in a store with records")
		}
	case err != nil:
		res.add(ProblemMeta, 0, "format version: %v", err)
	case vers != storeVersion:
		return fmt.Errorf("unsupported store format version %d (this build reads %d)", vers, storeVersion)
	}
	// After a repair the tail is the last decodable record; before it, Open
	// compares m/last with the highest log key.
	last, err := f.getSeq(keyMetaLast)
	switch {
	case errors.Is(err, ErrNotFound):
		if res.tail > 0 {
			res.add(ProblemMeta, 0, "no log tail (m/last) in a store with records up to seq %d", res.tail)
		}
	case err != nil:
		res.add(ProblemMeta, 0, "log tail: %v", err)
	case last != res.tail:
		res.add(ProblemMeta, 0, "m/last says the log ends at seq %d, it ends at %d", last, res.tail)
	}
	return nil
}

// repair quarantines res.bad, rebuilds k/, f/, h/ and the meta keys from
// the log, and drops every indexer's stored version. It returns the names
// of the indexers dropped.
func (f *fsck) repair(res *fsckResult) ([]string, error) {
	now := time.Now().UnixNano()
	b := f.db.NewBatch()
	defer b.Close()
	for _, bad := range res.bad {
		var qk []byte
		if bad.seq == 0 {
			qk = append(append([]byte{}, prefixCorruptKey...), bad.key[len(prefixLog):]...)
		} else {
			qk = binary.BigEndian.AppendUint64(append([]byte{}, prefixCorrupt...), uint64(bad.seq))
			qk = binary.BigEndian.AppendUint64(qk, uint64(now))
		}
		if err := b.Set(qk, bad.value, nil); err != nil {
			return nil, fmt.Errorf("quarantine %x: %w", bad.key, err)
		}
		if err := b.Delete(bad.key, nil); err != nil {
			return nil, fmt.Errorf("quarantine %x: %w", bad.key, err)
		}
	}
	if err := f.db.Apply(b, pebble.Sync); err != nil {
		return nil, fmt.Errorf("quarantine records: %w", err)
	}

	// Rebuild the derived keyspaces in batches; m/last goes last, so a cut
	// short repair is found (and redone) by the next fsck.
	for _, p := range [][]byte{prefixKey, prefixFeed, prefixHead} {
		if err := f.db.DeleteRange(p, prefixEnd(p), pebble.NoSync); err != nil {
			return nil, fmt.Errorf("clear %q: %w", p, err)
		}
	}
	f.total += res.tail * 2 // the rebuild, then the check after it
	b.Reset()
	heads := map[feeds.FeedRef]FeedLatest{}
	var rec Record
	var key []byte
	var tail int64
	n := 0
	err := f.scanDB(prefixLog, func(k, v []byte) error {
		seq := int64(binary.BigEndian.Uint64(k[len(prefixLog):]))
		if err := decodeRecord(seq, v, &rec); err != nil {
			return err // quarantined above: cannot happen
		}
		tail = seq
		key = byKeyKey(key[:0], rec.Key)
		err := b.Set(key, u64(seq), nil)
		key = byFeedKey(key[:0], rec.Author, rec.Sequence)
		if err := errors.Join(err, b.Set(key, u64(seq), nil)); err != nil {
			return fmt.Errorf("stage record %d: %w", seq, err)
		}
		if h := heads[rec.Author]; rec.Sequence > h.Sequence {
			heads[rec.Author] = FeedLatest{Author: rec.Author, Sequence: rec.Sequence, Key: rec.Key, Seq: seq}
		}
		f.progress(1)
		if n++; n == rebuildBatch {
			n = 0
			if err := f.db.Apply(b, pebble.NoSync); err != nil {
				return fmt.Errorf("write indexes: %w", err)
			}
			b.Reset()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for a, h := range heads {
		if err := b.Set(headKey(nil, a), encodeHead(h), nil); err != nil {
			return nil, fmt.Errorf("stage head: %w", err)
		}
	}
	if err := b.Set(keyMetaVers, u64(storeVersion), nil); err != nil {
		return nil, fmt.Errorf("stage format version: %w", err)
	}
	if err := b.Set(keyMetaLast, u64(tail), nil); err != nil {
		return nil, fmt.Errorf("stage log tail: %w", err)
	}
	// Every indexer is rebuilt from the log at the next Open: a record may
	// have left the log, and a stale one is rebuilt anyway.
	var names []string
	if err := f.scanDB(prefixIndexVers, func(k, _ []byte) error {
		names = append(names, string(k[len(prefixIndexVers):]))
		return nil
	}); err != nil {
		return nil, err
	}
	for _, name := range res.rebuildVersions {
		if !contains(names, name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	if err := b.DeleteRange(prefixIndexVers, prefixEnd(prefixIndexVers), nil); err != nil {
		return nil, fmt.Errorf("drop index versions: %w", err)
	}
	if err := f.db.Apply(b, pebble.Sync); err != nil {
		return nil, fmt.Errorf("write indexes: %w", err)
	}
	return names, nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

func (f *fsck) logTail() (int64, error) {
	it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: prefixLog, UpperBound: prefixEnd(prefixLog)})
	if err != nil {
		return 0, fmt.Errorf("find log tail: %w", err)
	}
	defer it.Close()
	// Skip malformed keys from the end: they are reported by the scan.
	for ok := it.Last(); ok; ok = it.Prev() {
		if k := it.Key(); len(k) == logKeyLength {
			return int64(binary.BigEndian.Uint64(k[len(prefixLog):])), nil
		}
	}
	return 0, it.Error()
}

func (f *fsck) get(key []byte) ([]byte, error) {
	v, closer, err := f.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", key, err)
	}
	defer closer.Close()
	return clone(v), nil
}

func (f *fsck) getSeq(key []byte) (int64, error) {
	v, err := f.get(key)
	if err != nil {
		return 0, err
	}
	return decodeSeqValue(string(key), v)
}

// scanDB calls fn for every key with prefix, checking for cancellation.
func (f *fsck) scanDB(prefix []byte, fn func(k, v []byte) error) error {
	it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("scan %q: %w", prefix, err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if n++; n%4096 == 0 {
			if err := f.ctx.Err(); err != nil {
				return err
			}
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("scan %q: %w", prefix, err)
		}
		if err := fn(it.Key(), v); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("scan %q: %w", prefix, err)
	}
	return nil
}
