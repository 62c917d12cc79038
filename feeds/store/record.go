package store

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/cask-ssb/cask/feeds"
)

// Record is one stored message with its store metadata.
type Record struct {
	Seq       int64            // receive sequence: global order in this store, assigned by Append, starts at 1
	Key       feeds.MessageRef // message id
	Author    feeds.FeedRef    // feed the message belongs to
	Sequence  int64            // sequence in the author's feed, starts at 1
	Timestamp float64          // local receive time, ms since epoch (Append fills time.Now if 0)
	Value     []byte           // the message value as compact JSON (opaque to the store)
}

// FeedLatest is the head of one feed: its latest message.
type FeedLatest struct {
	Author   feeds.FeedRef
	Sequence int64            // sequence of the latest message
	Key      feeds.MessageRef // id of the latest message
	Seq      int64            // receive sequence of the latest message
}

const (
	recordFormat     = 1
	recordHeaderSize = 4 + 1 + 32 + 32 + 8 + 8
	headValueSize    = 8 + 32 + 8
	storeVersion     = 1
)

// castagnoli is the CRC-32C table (a constant table).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Key prefixes; see doc.go.
var (
	prefixLog    = []byte("l/")
	prefixKey    = []byte("k/")
	prefixFeed   = []byte("f/")
	prefixHead   = []byte("h/")
	keyMetaLast  = []byte("m/last")
	keyMetaVers  = []byte("m/version")
	logKeyLength = 2 + 8
)

func logKey(dst []byte, seq int64) []byte {
	dst = append(dst, prefixLog...)
	return binary.BigEndian.AppendUint64(dst, uint64(seq))
}

func byKeyKey(dst []byte, k feeds.MessageRef) []byte {
	dst = append(dst, prefixKey...)
	return append(dst, k[:]...)
}

func byFeedKey(dst []byte, a feeds.FeedRef, sequence int64) []byte {
	dst = append(dst, prefixFeed...)
	dst = append(dst, a[:]...)
	return binary.BigEndian.AppendUint64(dst, uint64(sequence))
}

func headKey(dst []byte, a feeds.FeedRef) []byte {
	dst = append(dst, prefixHead...)
	return append(dst, a[:]...)
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

func u64(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

func recordChecksum(seq int64, body []byte) uint32 {
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], uint64(seq))
	return crc32.Update(crc32.Update(0, castagnoli, s[:]), castagnoli, body)
}

// appendRecord appends the encoded form of r, stored under seq, to dst.
func appendRecord(dst []byte, seq int64, r *Record) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, recordFormat)
	dst = append(dst, r.Key[:]...)
	dst = append(dst, r.Author[:]...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.Sequence))
	dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(r.Timestamp))
	dst = append(dst, r.Value...)
	binary.BigEndian.PutUint32(dst[start:], recordChecksum(seq, dst[start+4:]))
	return dst
}

// decodeRecord decodes the record stored under seq into r. r.Value aliases b;
// the caller copies it if b is not its own.
func decodeRecord(seq int64, b []byte, r *Record) error {
	if len(b) < recordHeaderSize {
		return fmt.Errorf("%w: record %d: %d bytes, shorter than the %d-byte header", ErrCorrupt, seq, len(b), recordHeaderSize)
	}
	if got, want := recordChecksum(seq, b[4:]), binary.BigEndian.Uint32(b); got != want {
		return fmt.Errorf("%w: record %d: checksum %08x, stored %08x", ErrCorrupt, seq, got, want)
	}
	if b[4] != recordFormat {
		return fmt.Errorf("%w: record %d: unknown record format %d", ErrCorrupt, seq, b[4])
	}
	r.Seq = seq
	copy(r.Key[:], b[5:37])
	copy(r.Author[:], b[37:69])
	r.Sequence = int64(binary.BigEndian.Uint64(b[69:77]))
	r.Timestamp = math.Float64frombits(binary.BigEndian.Uint64(b[77:85]))
	r.Value = b[recordHeaderSize:]
	return nil
}

func encodeHead(h FeedLatest) []byte {
	b := make([]byte, 0, headValueSize)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Sequence))
	b = append(b, h.Key[:]...)
	return binary.BigEndian.AppendUint64(b, uint64(h.Seq))
}

func decodeHead(author feeds.FeedRef, b []byte) (FeedLatest, error) {
	if len(b) != headValueSize {
		return FeedLatest{}, fmt.Errorf("%w: head of %s: %d bytes, want %d", ErrCorrupt, author, len(b), headValueSize)
	}
	h := FeedLatest{Author: author}
	h.Sequence = int64(binary.BigEndian.Uint64(b))
	copy(h.Key[:], b[8:40])
	h.Seq = int64(binary.BigEndian.Uint64(b[40:]))
	return h, nil
}

func decodeSeqValue(what string, b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: %s: index value has %d bytes, want 8", ErrCorrupt, what, len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}
