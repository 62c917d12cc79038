package classic

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"math"

	"github.com/cask-ssb/cask/feeds"
)

// Create builds and signs the next message of the feed of key.
//
// state is the feed's latest message (nil for the first message); timestamp
// is the author's claimed time in ms (it must increase, like ssb-validate's
// create requires); content is anything FromGo accepts (a Value, []Member,
// RawJSON, map[string]any, …) and must be an object with a string type of
// 3..52 UTF-16 units, or an encrypted "<base64>.box" string. hmacKey is the
// network's sign cap (nil on the main network).
//
// Keys are emitted in the order current JavaScript writes them (previous,
// sequence, author, timestamp, hash, content, signature) and content keys in
// V8 order. The result satisfies both ssb-validate and ssb-classic, including
// the 8192-unit limit on the signed message.
func Create(key ed25519.PrivateKey, state *FeedState, timestamp float64, content any, hmacKey *[32]byte) (*Message, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("classic: create: private key has %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	author, err := feeds.FeedRefFromPublicKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("classic: create: %w", err)
	}
	if math.IsNaN(timestamp) || math.IsInf(timestamp, 0) {
		return nil, fmt.Errorf("classic: create: timestamp must be a finite number")
	}
	if state != nil && !(timestamp > state.Timestamp) {
		return nil, fmt.Errorf("classic: create: timestamp %v must be greater than the previous message's %v", timestamp, state.Timestamp)
	}
	c, err := FromGo(content)
	if err != nil {
		return nil, fmt.Errorf("classic: create: content: %w", err)
	}
	switch c.kind {
	case KindObject:
		t, _ := c.Get("type")
		if t.kind != KindString {
			return nil, fmt.Errorf("classic: create: content.type must be a string")
		}
		if n := utf16Len(t.s); n < MinTypeLen || n > MaxTypeLen {
			return nil, fmt.Errorf("classic: create: content.type is %d UTF-16 units, want %d..%d", n, MinTypeLen, MaxTypeLen)
		}
	case KindString:
		if !IsEncryptedString(c.s) {
			return nil, fmt.Errorf("classic: create: string content must be <canonical base64>.box")
		}
	default:
		return nil, fmt.Errorf("classic: create: content must be an object or an encrypted string, got %s", c.kind)
	}

	prev := Null()
	seq := int64(1)
	if state != nil {
		prev = String(state.Key.String())
		seq = state.Sequence + 1
	}
	if seq > math.MaxInt32 {
		return nil, fmt.Errorf("classic: create: sequence %d exceeds the 32-bit limit", seq)
	}
	members := []Member{
		{Key: "previous", Value: prev},
		{Key: "sequence", Value: Number(float64(seq))},
		{Key: "author", Value: String(author.String())},
		{Key: "timestamp", Value: Number(timestamp)},
		{Key: "hash", Value: String("sha256")},
		{Key: "content", Value: c},
	}
	unsigned := Value{kind: KindObject, items: members}
	signed := AppendCanonical(nil, unsigned)
	sig := ed25519.Sign(key, signingInput(signed, hmacKey))
	full := Value{kind: KindObject, items: append(members[:6:6], Member{
		Key:   "signature",
		Value: String(base64.StdEncoding.EncodeToString(sig) + sigSuffix),
	})}
	m, err := FromValue(full)
	if err != nil {
		return nil, fmt.Errorf("classic: create: %w", err)
	}
	return m, nil
}
