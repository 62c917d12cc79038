// Package feeds holds the identities and references of Secure Scuttlebutt:
// feed ids (ed25519 public keys), message ids and blob ids, their sigil and
// ssb: URI forms, the ssb-ref text predicates (Classify, IsFeedID, ParseLink,
// Extract, ...), multiserver peer addresses, key pairs and the ssb-keys
// secret file.
//
// It imports nothing else of the project and never touches the network:
// addresses are only parsed and printed here, never dialled. The only file
// it writes is a secret file, and it never overwrites one.
package feeds

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Errors returned by the parsers; wrapped with the offending input.
var (
	ErrInvalidRef = errors.New("invalid ssb reference")
)

// FeedRef identifies a classic feed: an ed25519 public key.
// Its sigil form is "@" + base64(key) + ".ed25519".
type FeedRef [32]byte

// MessageRef identifies a classic message: the sha256 of its canonical
// encoding. Its sigil form is "%" + base64(hash) + ".sha256".
type MessageRef [32]byte

// BlobRef identifies a blob: the sha256 of its bytes.
// Its sigil form is "&" + base64(hash) + ".sha256".
type BlobRef [32]byte

const (
	feedSuffix = ".ed25519"
	hashSuffix = ".sha256"
)

// String returns the sigil form "@...=.ed25519".
func (r FeedRef) String() string { return string(sigilForm(make([]byte, 0, 53), '@', r, feedSuffix)) }

// PublicKey returns the feed's ed25519 public key.
func (r FeedRef) PublicKey() ed25519.PublicKey { return ed25519.PublicKey(r[:]) }

// IsZero reports whether r is the zero value.
func (r FeedRef) IsZero() bool { return r == FeedRef{} }

// MarshalText implements encoding.TextMarshaler (sigil form).
func (r FeedRef) MarshalText() ([]byte, error) {
	return sigilForm(make([]byte, 0, 53), '@', r, feedSuffix), nil
}

// UnmarshalText implements encoding.TextUnmarshaler (sigil or URI form).
func (r *FeedRef) UnmarshalText(b []byte) error {
	v, err := ParseFeedRef(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// String returns the sigil form "%...=.sha256".
func (r MessageRef) String() string {
	return string(sigilForm(make([]byte, 0, 52), '%', r, hashSuffix))
}

// IsZero reports whether r is the zero value.
func (r MessageRef) IsZero() bool { return r == MessageRef{} }

// MarshalText implements encoding.TextMarshaler (sigil form).
func (r MessageRef) MarshalText() ([]byte, error) {
	return sigilForm(make([]byte, 0, 52), '%', r, hashSuffix), nil
}

// UnmarshalText implements encoding.TextUnmarshaler (sigil or URI form).
func (r *MessageRef) UnmarshalText(b []byte) error {
	v, err := ParseMessageRef(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// String returns the sigil form "&...=.sha256".
func (r BlobRef) String() string { return string(sigilForm(make([]byte, 0, 52), '&', r, hashSuffix)) }

// IsZero reports whether r is the zero value.
func (r BlobRef) IsZero() bool { return r == BlobRef{} }

// MarshalText implements encoding.TextMarshaler (sigil form).
func (r BlobRef) MarshalText() ([]byte, error) {
	return sigilForm(make([]byte, 0, 52), '&', r, hashSuffix), nil
}

// UnmarshalText implements encoding.TextUnmarshaler (sigil or URI form).
func (r *BlobRef) UnmarshalText(b []byte) error {
	v, err := ParseBlobRef(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// sigilForm appends sigil + base64(key) + suffix to dst.
func sigilForm(dst []byte, sigil byte, key [32]byte, suffix string) []byte {
	dst = append(dst, sigil)
	dst = base64.StdEncoding.AppendEncode(dst, key[:])
	return append(dst, suffix...)
}

// FeedRefFromPublicKey converts an ed25519 public key to a FeedRef.
func FeedRefFromPublicKey(pk ed25519.PublicKey) (FeedRef, error) {
	var r FeedRef
	if len(pk) != ed25519.PublicKeySize {
		return r, fmt.Errorf("%w: public key has %d bytes, want 32", ErrInvalidRef, len(pk))
	}
	copy(r[:], pk)
	return r, nil
}

// decode32 decodes a strict, canonical, padded base64 string of exactly 32 bytes.
func decode32(s string) ([32]byte, bool) {
	var out [32]byte
	if len(s) != 44 || s[43] != '=' {
		return out, false
	}
	n, err := base64.StdEncoding.Strict().Decode(out[:], []byte(s))
	if err != nil || n != 32 {
		return out, false
	}
	return out, true
}

// ParseFeedRef parses "@<b64>.ed25519" or an ssb: URI
// (ssb:feed/classic/<b64url>, ssb:feed/ed25519/<b64url>, colon separators allowed).
func ParseFeedRef(s string) (FeedRef, error) {
	if strings.HasPrefix(s, "ssb:") {
		raw, err := parseURI(s, "feed", "classic", "ed25519")
		return FeedRef(raw), err
	}
	if len(s) == 1+44+len(feedSuffix) && s[0] == '@' && strings.HasSuffix(s, feedSuffix) {
		if v, ok := decode32(s[1:45]); ok {
			return FeedRef(v), nil
		}
	}
	return FeedRef{}, fmt.Errorf("%w: not a feed id: %q", ErrInvalidRef, truncate(s))
}

// ParseMessageRef parses "%<b64>.sha256" or an ssb:message/... URI.
func ParseMessageRef(s string) (MessageRef, error) {
	if strings.HasPrefix(s, "ssb:") {
		raw, err := parseURI(s, "message", "classic", "sha256")
		return MessageRef(raw), err
	}
	if len(s) == 1+44+len(hashSuffix) && s[0] == '%' && strings.HasSuffix(s, hashSuffix) {
		if v, ok := decode32(s[1:45]); ok {
			return MessageRef(v), nil
		}
	}
	return MessageRef{}, fmt.Errorf("%w: not a message id: %q", ErrInvalidRef, truncate(s))
}

// ParseBlobRef parses "&<b64>.sha256" or an ssb:blob/... URI.
func ParseBlobRef(s string) (BlobRef, error) {
	if strings.HasPrefix(s, "ssb:") {
		raw, err := parseURI(s, "blob", "classic", "sha256")
		return BlobRef(raw), err
	}
	if len(s) == 1+44+len(hashSuffix) && s[0] == '&' && strings.HasSuffix(s, hashSuffix) {
		if v, ok := decode32(s[1:45]); ok {
			return BlobRef(v), nil
		}
	}
	return BlobRef{}, fmt.Errorf("%w: not a blob id: %q", ErrInvalidRef, truncate(s))
}

// URI returns the ssb: URI form "ssb:feed/classic/<b64url>".
func (r FeedRef) URI() string { return "ssb:feed/classic/" + base64.URLEncoding.EncodeToString(r[:]) }

// URI returns the ssb: URI form "ssb:message/classic/<b64url>".
func (r MessageRef) URI() string {
	return "ssb:message/classic/" + base64.URLEncoding.EncodeToString(r[:])
}

// URI returns the ssb: URI form "ssb:blob/classic/<b64url>".
func (r BlobRef) URI() string { return "ssb:blob/classic/" + base64.URLEncoding.EncodeToString(r[:]) }

func parseURI(s, kind, format, legacyFormat string) ([32]byte, error) {
	var out [32]byte
	rest := strings.TrimPrefix(s, "ssb:")
	var parts []string
	if strings.Contains(rest, "/") {
		parts = strings.Split(rest, "/")
	} else {
		parts = strings.Split(rest, ":")
	}
	if len(parts) != 3 || parts[0] != kind || (parts[1] != format && parts[1] != legacyFormat) {
		return out, fmt.Errorf("%w: not an ssb:%s URI: %q", ErrInvalidRef, kind, truncate(s))
	}
	data := parts[2]
	if len(data) != 44 || data[43] != '=' {
		return out, fmt.Errorf("%w: bad key in URI %q", ErrInvalidRef, truncate(s))
	}
	n, err := base64.URLEncoding.Strict().Decode(out[:], []byte(data))
	if err != nil || n != 32 {
		return out, fmt.Errorf("%w: bad key in URI %q", ErrInvalidRef, truncate(s))
	}
	return out, nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
