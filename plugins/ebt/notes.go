// Package ebt serves epidemic broadcast tree replication (ssb-ebt,
// protocol version 3, classic feeds): `ebt.replicate` (duplex) and
// `ebt.clock` (async).
//
// A session exchanges vector clocks ("notes": feed id → encoded sequence
// and receive flag) and then the messages each side asked for, live. This
// implementation asks every peer for every feed it replicates (no
// partitioning between peers yet) and keeps no per-peer clock between
// connections, so every session starts with full notes.
//
// The package never validates or stores messages itself: it hands what it
// receives to an Ingester and reads what it sends from a Store.
package ebt

// Note encodes a feed's replication state as ssb-ebt v3 does:
// -1 = not replicating; otherwise (seq << 1) | (receive ? 0 : 1), with
// JavaScript's 32-bit shift (sequences from 2^30 on overflow, as in JS).
func Note(seq int64, receive bool) int64 {
	if seq < 0 {
		return -1
	}
	v := int32(uint32(seq) << 1)
	if !receive {
		v |= 1
	}
	return int64(v)
}

// Decoded is one decoded note.
type Decoded struct {
	Replicate bool  // false for -1
	Receive   bool  // the sender wants to receive this feed from us
	Sequence  int64 // the sender's latest sequence of the feed
}

// DecodeNote decodes a note. Non-integer values decode as "not
// replicating", like JS.
func DecodeNote(v float64) Decoded {
	if v != float64(int64(v)) || v < -1<<31 || v >= 1<<31 {
		return Decoded{Sequence: -1}
	}
	n := int32(v)
	if n == -1 {
		return Decoded{Sequence: -1}
	}
	return Decoded{Replicate: true, Receive: n&1 == 0, Sequence: int64(n >> 1)}
}
