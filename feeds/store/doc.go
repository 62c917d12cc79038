// Package store is the append-only message store of a Cask node: every
// message the node accepts is appended here once, in receive order, and read
// back by receive sequence (the log), by message id, or per feed in sequence
// order (history). It is built on Pebble (one directory, no server).
//
// The store never parses, validates or signs messages: values are opaque
// compact JSON handed over by feeds/classic after validation. The only rules
// it enforces are structural: per feed, each appended message has sequence
// latest+1 (ErrOutOfOrder), and a message id is stored at most once
// (ErrDuplicate). It must never rewrite or delete an acknowledged record, and
// never let an index disagree with the log.
//
// # Durability
//
// Append writes all records of a call, and every index entry they cause, in
// one Pebble batch committed with pebble.Sync; when Append returns nil the
// records survive kill -9 and power loss. Concurrent Append calls are
// serialized, each atomic on its own (a call that fails writes nothing and
// does not affect the others) and each with its own fsync: group commit is
// the job of the one feed writer above the store (feeds/feedlog), so there
// is one batching layer, not two.
//
// # Indexes
//
// Indexers (Options.Indexers) stage their keys into the same batch as the
// records they derive from, so an index never disagrees with the log after
// a crash. Each has its own key prefix and a stored version; Open rebuilds
// an index whose version changed from the whole log, logging progress.
//
// # On-disk layout
//
// A store directory holds a lock file (LOCK, flock'd by the owning process,
// containing its pid) and the Pebble database (pebble/). Keys in Pebble, all
// integers big-endian uint64:
//
//	l/<seq:8>                 log record (see below), seq = receive sequence 1..N
//	k/<msgkey:32>             → <seq:8>         by-key index
//	f/<author:32><sequence:8> → <seq:8>         by-feed index
//	h/<author:32>             → <sequence:8><msgkey:32><seq:8>  feed head (latest)
//	m/last                    → <seq:8>         receive sequence of the log tail
//	m/version                 → <version:8>     on-disk format version (1)
//	i/<name>/<key...>         → <value...>      keys of the indexer <name>
//	m/index/<name>            → <version:8>     version of the indexer <name>
//	x/fork/<author:32><sequence:8> → JSON      evidence of a fork (store.Fork)
//	x/corrupt/<seq:8><unix nanos:8> → bytes   an undecodable record Fsck moved aside
//	x/corrupt-key/<key tail>        → bytes   the value of a malformed log key, moved aside
//	x/ebtclock/<peer:32>      → repeated <feed:32><sequence:8>  last known clock of an EBT peer
//
// A log record is
//
//	<crc32c:4><format:1 = 1><msgkey:32><author:32><sequence:8><timestamp float64 bits:8><value...>
//
// where the CRC-32C (Castagnoli) covers the 8-byte key seq followed by every
// byte after the checksum, so a record that is damaged or filed under the
// wrong sequence is reported as ErrCorrupt with its seq.
//
// On Open the meta key m/last is compared with the log tail and rewritten
// from the log if they disagree (they cannot, short of disk corruption, since
// both are written in the same batch). Verify walks the whole log and
// cross-checks every index.
//
// # Checking and repairing offline
//
// Fsck checks a closed store (it takes the directory lock) and reports each
// problem by kind: torn-tail and corrupt-record (a record that does not
// decode, at the tail or before it), log-key (a malformed log key), log-gap
// and feed-sequence (a message missing from the log or from its feed), index
// (k/ or f/ disagree with the log), head, meta (m/last, m/version) and
// stale-index (an indexer's stored version). With Repair it moves
// undecodable records to x/corrupt/ (so a torn tail truncates the log; no
// byte is deleted), rebuilds k/, f/, h/ and the meta keys from the log, and
// drops every indexer's stored version so the next Open rebuilds the
// indexers. A missing message cannot be repaired: it is reported. The log may
// then have gaps at quarantined sequences, and a feed may lack the message a
// quarantined record held; Verify, History and Log accept both.
package store
