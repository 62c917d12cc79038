package classic

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/cask-ssb/cask/feeds"
	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// MaxMessageUnits is the limit on JSON.stringify(msg, null, 2).length, in
// UTF-16 code units, of a signed message.
const MaxMessageUnits = 8192

// Type length limits of content.type, in UTF-16 code units.
const (
	MinTypeLen = 3
	MaxTypeLen = 52
)

const (
	sigSuffix = ".sig.ed25519"
	boxMarker = ".box"
)

// ValidationError is why a message was rejected. Fatal errors mean the feed
// is broken or forked from our point of view (ssb-validate's err.fatal);
// non-fatal ones mean "ignore this message" (usually a duplicate or a message
// that is malformed in a way that says nothing about the feed).
type ValidationError struct {
	Fatal  bool
	Reason string
	Err    error // underlying cause, if any
}

func (e *ValidationError) Error() string {
	kind := "invalid message"
	if e.Fatal {
		kind = "invalid message (fatal)"
	}
	if e.Err != nil {
		return fmt.Sprintf("classic: %s: %s: %v", kind, e.Reason, e.Err)
	}
	return fmt.Sprintf("classic: %s: %s", kind, e.Reason)
}

func (e *ValidationError) Unwrap() error { return e.Err }

func invalid(fatal bool, format string, args ...any) *ValidationError {
	return &ValidationError{Fatal: fatal, Reason: fmt.Sprintf(format, args...)}
}

// IsFatal reports whether err is (or wraps) a fatal ValidationError.
func IsFatal(err error) bool {
	var ve *ValidationError
	return errors.As(err, &ve) && ve.Fatal
}

// Message is a parsed classic message with its canonical encodings.
type Message struct {
	Key       feeds.MessageRef  // the message id (sha256 of latin1(Canonical))
	Previous  *feeds.MessageRef // nil when previous is null (or not a message id, see PreviousValid)
	Author    feeds.FeedRef
	Sequence  int64
	Timestamp float64 // claimed by the author; NaN if the JSON value is not a number
	Content   Value   // an object, or a string for encrypted content
	Signature [64]byte

	// Canonical is JSON.stringify(value, null, 2) of the signed message
	// (UTF-8): what the id hashes.
	Canonical []byte
	// Compact is JSON.stringify(value): the form for the wire and the store.
	Compact []byte

	// AuthorFirst is true for key order previous, author, sequence (the
	// protocol guide's order) and false for previous, sequence, author.
	AuthorFirst bool

	timestamp Value // the raw timestamp value
	prevState prevKind
	signedLen int // Canonical[:signedLen] + "\n}" is the unsigned canonical text
}

type prevKind uint8

const (
	prevNull prevKind = iota
	prevRef
	prevOther // present but neither null nor a message id string
)

// PreviousValid reports whether the previous field is null or a message id.
func (m *Message) PreviousValid() bool { return m.prevState != prevOther }

// TimestampIsNumber reports whether the timestamp field is a JSON number
// (ssb-validate only requires this of the first message of a feed).
func (m *Message) TimestampIsNumber() bool { return m.timestamp.kind == KindNumber }

// ContentType returns content.type, or "" for encrypted content.
func (m *Message) ContentType() string {
	t, _ := m.Content.Get("type")
	return t.Str()
}

// IsEncrypted reports whether the content is an encrypted string
// ("<base64>.box…").
func (m *Message) IsEncrypted() bool { return m.Content.kind == KindString }

// ContentJSON returns JSON.stringify(content).
func (m *Message) ContentJSON() []byte { return AppendCompact(nil, m.Content) }

// SignedBytes returns the UTF-8 canonical text of the message without its
// signature: the bytes the author signed when there is no sign cap.
func (m *Message) SignedBytes() []byte {
	b := make([]byte, m.signedLen+2)
	copy(b, m.Canonical[:m.signedLen])
	b[m.signedLen] = '\n'
	b[m.signedLen+1] = '}'
	return b
}

// appendSignedBytes appends SignedBytes to b.
func (m *Message) appendSignedBytes(b []byte) []byte {
	b = append(b, m.Canonical[:m.signedLen]...)
	return append(b, '\n', '}')
}

// signingInput returns what the ed25519 signature covers: SignedBytes, or its
// HMAC-SHA-512-256 under the network's sign cap.
func signingInput(signed []byte, hmacKey *[32]byte) []byte {
	if hmacKey == nil {
		return signed
	}
	mac := hmac.New(sha512.New, hmacKey[:])
	mac.Write(signed)
	return mac.Sum(nil)[:32]
}

// verifyOptions are the ed25519 acceptance rules, chosen to match libsodium's
// crypto_sign_verify_detached (used by the JS stack via sodium-native /
// chloride) as closely as batch verification allows: reject small-order and
// non-canonical A and R, reject non-canonical S. The one unavoidable
// difference: verification is cofactored (the batch equation is), where
// libsodium is cofactorless; the two only disagree on signatures built with
// deliberate small-order components, which honest signers never produce.
var verifyOptions = &voi.Options{Verify: &voi.VerifyOptions{}}

// VerifySignature checks the signature with the author's key. hmacKey is the
// network's sign cap (nil on the main network).
func (m *Message) VerifySignature(hmacKey *[32]byte) error {
	msg := signingInput(m.SignedBytes(), hmacKey)
	if !voi.VerifyWithOptions(voi.PublicKey(m.Author[:]), msg, m.Signature[:], verifyOptions) {
		return invalid(true, "signature does not verify for %s seq %d", m.Author, m.Sequence)
	}
	return nil
}

// ParseHMACKey parses a sign cap in base64. It must be canonical base64 of
// exactly 32 bytes (ssb-keys rejects anything else). "" gives nil, nil.
func ParseHMACKey(s string) (*[32]byte, error) {
	if s == "" {
		return nil, nil
	}
	var k [32]byte
	if len(s) != 44 {
		return nil, invalid(true, "hmac key must be 32 bytes of base64")
	}
	var raw [33]byte // 44 base64 chars without padding decode to 33 bytes
	n, err := base64.StdEncoding.Strict().Decode(raw[:], []byte(s))
	copy(k[:], raw[:])
	if err != nil || n != 32 {
		return nil, &ValidationError{Fatal: true, Reason: "hmac key must be canonical base64 of 32 bytes", Err: err}
	}
	return &k, nil
}

// Parse decodes a bare classic message value (a JSON object) the way a JS
// peer does, re-canonicalises it, computes its id, and checks every rule that
// does not need the feed's state: author is a feed id, signature format,
// exactly seven keys in an allowed order, shape (sequence a 32-bit integer,
// hash "sha256", content an object with a 3..52-unit type or an encrypted
// string) and the 8192-unit size limit. It does not verify the signature and
// does not check sequence/previous against the feed (see ValidateNext).
//
// Policy: accept exactly what ssb-validate@4.1.4 accepts, with these
// deliberate, stricter exceptions: the author must be "@…=.ed25519" (a
// ".sha256" author can never verify anyway), the signature must be canonical
// base64 of 64 bytes + ".sig.ed25519", and previous must be null or a
// message id string (JS would loosely compare an array ["%id"] equal).
// Errors are *ValidationError; fatal follows ssb-validate (key order is
// fatal, shape is not).
func Parse(data []byte) (*Message, error) {
	v, err := Decode(data)
	if err != nil {
		return nil, &ValidationError{Reason: "message is not valid JSON", Err: err}
	}
	return FromValue(v)
}

// ParseKVT accepts either a {"key","value","timestamp"} record or a bare
// message value. For a record it returns the receive timestamp (NaN if
// absent) and the claimed key (nil if absent); the caller decides whether a
// claimed key that differs from m.Key is an error.
func ParseKVT(data []byte) (m *Message, received float64, claimed *feeds.MessageRef, err error) {
	v, err := Decode(data)
	if err != nil {
		return nil, math.NaN(), nil, &ValidationError{Reason: "record is not valid JSON", Err: err}
	}
	received = math.NaN()
	if val, ok := v.Get("value"); ok && val.kind == KindObject {
		if _, isMsg := v.Get("signature"); !isMsg {
			if k, ok := v.Get("key"); ok && k.kind == KindString {
				p, ok := parseSigil(k.s, '%', ".sha256")
				if !ok {
					return nil, received, nil, invalid(false, "record key %q is not a message id", truncate(k.s))
				}
				ref := feeds.MessageRef(p)
				claimed = &ref
			}
			if ts, ok := v.Get("timestamp"); ok && ts.kind == KindNumber {
				received = ts.n
			}
			v = val
		}
	}
	m, err = FromValue(v)
	return m, received, claimed, err
}

// FromValue is Parse for an already decoded value.
func FromValue(v Value) (*Message, error) {
	if v.kind != KindObject {
		return nil, invalid(false, "message must be an object, got %s", v.kind)
	}
	m := &Message{Timestamp: math.NaN()}
	// 1. author must be a feed id (non-fatal).
	author, _ := v.Get("author")
	if author.kind != KindString {
		return nil, invalid(false, "author must be a feed id string")
	}
	ref, ok := parseSigil(author.s, '@', ".ed25519")
	if !ok {
		return nil, invalid(false, "author %q is not a feed id", truncate(author.s))
	}
	m.Author = feeds.FeedRef(ref)
	// 2. signature format (non-fatal).
	sig, _ := v.Get("signature")
	if sig.kind != KindString || !strings.HasSuffix(sig.s, sigSuffix) || len(sig.s) != 88+len(sigSuffix) {
		return nil, invalid(false, "signature must be base64 of 64 bytes + %q", sigSuffix)
	}
	var raw [66]byte // 88 base64 chars without padding decode to 66 bytes
	if n, err := base64.StdEncoding.Strict().Decode(raw[:], []byte(sig.s[:88])); err != nil || n != 64 {
		return nil, invalid(false, "signature base64 must be canonical")
	}
	copy(m.Signature[:], raw[:64])
	// 5. key order (fatal).
	if !validOrder(v.items) {
		return nil, invalid(true, "message must have keys in allowed order")
	}
	m.AuthorFirst = v.items[1].Key == "author"
	prev, ts, hash, content := v.items[0].Value, v.items[3].Value, v.items[4].Value, v.items[5].Value
	seq := v.items[1].Value
	if m.AuthorFirst {
		seq = v.items[2].Value
	}
	// 6. shape (non-fatal).
	if seq.kind != KindNumber || seq.n != math.Trunc(seq.n) || seq.n < math.MinInt32 || seq.n > math.MaxInt32 {
		return nil, invalid(false, "sequence must be a 32-bit integer")
	}
	m.Sequence = int64(seq.n)
	if hash.kind != KindString || hash.s != "sha256" {
		return nil, invalid(false, "hash must be \"sha256\"")
	}
	switch content.kind {
	case KindObject:
		t, _ := content.Get("type")
		if t.kind != KindString {
			return nil, invalid(false, "content type must be a string")
		}
		if n := utf16Len(t.s); n < MinTypeLen || n > MaxTypeLen {
			return nil, invalid(false, "content type length %d not in %d..%d", n, MinTypeLen, MaxTypeLen)
		}
	case KindString:
		if !IsEncryptedString(content.s) {
			return nil, invalid(false, "content string must be <canonical base64>.box")
		}
	case KindArray:
		return nil, invalid(false, "content must not be an array")
	default:
		return nil, invalid(false, "content must be an object or an encrypted string")
	}
	m.Content = content
	m.timestamp = ts
	if ts.kind == KindNumber {
		m.Timestamp = ts.n
	}
	switch prev.kind {
	case KindNull:
		m.prevState = prevNull
	case KindString:
		if p, ok := parseSigil(prev.s, '%', ".sha256"); ok {
			ref := feeds.MessageRef(p)
			m.Previous = &ref
			m.prevState = prevRef
		} else {
			m.prevState = prevOther
		}
	default:
		m.prevState = prevOther
	}

	// Canonical and compact encodings in one buffer.
	pretty, compact := estimateSizes(v, 0)
	buf := make([]byte, 0, pretty+compact+32)
	buf = append(buf, '{')
	for i := 0; i < 6; i++ {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, '\n', ' ', ' ')
		buf = appendQuoted(buf, v.items[i].Key)
		buf = append(buf, ':', ' ')
		buf = appendIndent(buf, v.items[i].Value, 1)
	}
	m.signedLen = len(buf)
	buf = append(buf, ",\n  \"signature\": "...)
	buf = appendQuoted(buf, sig.s)
	buf = append(buf, '\n', '}')
	m.Canonical = buf[:len(buf):len(buf)]
	units, ascii := utf16LenASCII(m.Canonical)
	if units > MaxMessageUnits {
		return nil, invalid(false, "message is %d UTF-16 units, limit %d", units, MaxMessageUnits)
	}
	start := len(buf)
	buf = AppendCompact(buf, v)
	m.Compact = buf[start:len(buf):len(buf)]
	if ascii {
		m.Key = feeds.MessageRef(sha256.Sum256(m.Canonical))
	} else {
		m.Key = feeds.MessageRef(sha256.Sum256(appendLatin1(make([]byte, 0, len(m.Canonical)), m.Canonical)))
	}
	return m, nil
}

// estimateSizes estimates the canonical (pretty) and compact sizes of a
// value at the given depth; exact for strings without escapes and numbers
// up to 16 characters.
func estimateSizes(v Value, depth int) (pretty, compact int) {
	switch v.kind {
	case KindString:
		return len(v.s) + 2, len(v.s) + 2
	case KindNumber:
		return 16, 16
	case KindNull, KindBool:
		return 5, 5
	}
	if len(v.items) == 0 {
		return 2, 2
	}
	pretty, compact = 2+1+2*depth, 2 // brackets, closing newline+indent
	for i := range v.items {
		it := &v.items[i]
		p, c := estimateSizes(it.Value, depth+1)
		pretty += p + 2 + 2*(depth+1) // comma, newline, indent
		compact += c + 1
		if v.kind == KindObject {
			pretty += len(it.Key) + 4
			compact += len(it.Key) + 3
		}
	}
	return pretty, compact
}

// utf16LenASCII counts UTF-16 units of UTF-8 text and reports whether it is
// all ASCII.
func utf16LenASCII(b []byte) (int, bool) {
	i := 0
	for i+8 <= len(b) {
		if (uint64(b[i])|uint64(b[i+1])|uint64(b[i+2])|uint64(b[i+3])|
			uint64(b[i+4])|uint64(b[i+5])|uint64(b[i+6])|uint64(b[i+7]))&0x80 != 0 {
			break
		}
		i += 8
	}
	for i < len(b) && b[i] < 0x80 {
		i++
	}
	if i == len(b) {
		return len(b), true
	}
	return i + UTF16Len(b[i:]), false
}

// validOrder implements ssb-validate's isValidOrder(msg, signed=true).
func validOrder(items []Member) bool {
	if len(items) != 7 {
		return false
	}
	if items[0].Key != "previous" || items[3].Key != "timestamp" || items[4].Key != "hash" ||
		items[5].Key != "content" || items[6].Key != "signature" {
		return false
	}
	return (items[1].Key == "sequence" && items[2].Key == "author") ||
		(items[1].Key == "author" && items[2].Key == "sequence")
}

// IsEncryptedString reports whether s matches ssb-validate's encrypted
// content pattern /^<canonical base64>\.box.*$/ (anything after ".box" except
// JavaScript line terminators, so ".box2" also matches).
func IsEncryptedString(s string) bool {
	i := strings.IndexByte(s, '.')
	if i < 0 || !strings.HasPrefix(s[i:], boxMarker) || !isCanonicalBase64(s[:i]) {
		return false
	}
	rest := s[i+len(boxMarker):]
	return !strings.ContainsAny(rest, "\n\r\u2028\u2029")
}

// isCanonicalBase64 matches is-canonical-base64's pattern: groups of 4
// base64 characters, optionally ending in a padded group whose unused bits
// are zero.
func isCanonicalBase64(s string) bool {
	if len(s)%4 != 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isB64Char(c) {
			if c != '=' {
				return false
			}
			// padding only in the last 2 positions
			switch {
			case i == len(s)-1:
			case i == len(s)-2 && s[i+1] == '=':
			default:
				return false
			}
			break
		}
	}
	switch {
	case strings.HasSuffix(s, "=="):
		return strings.IndexByte("AQgw", s[len(s)-3]) >= 0
	case strings.HasSuffix(s, "="):
		return strings.IndexByte("AEIMQUYcgkosw048", s[len(s)-2]) >= 0
	}
	return true
}

func isB64Char(c byte) bool { return b64Chars[c] }

var b64Chars = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") {
		t[c] = true
	}
	return t
}()

// parseSigil parses sigil + canonical base64 of 32 bytes + suffix (the
// ssb-ref forms of feed and message ids).
func parseSigil(s string, sigil byte, suffix string) ([32]byte, bool) {
	var out [32]byte
	if len(s) != 1+44+len(suffix) || s[0] != sigil || s[44] != '=' || s[45:] != suffix {
		return out, false
	}
	var raw [33]byte
	n, err := base64.StdEncoding.Strict().Decode(raw[:], []byte(s[1:45]))
	copy(out[:], raw[:])
	return out, err == nil && n == 32
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// FeedState is the latest valid message of a feed, as ssb-validate keeps it.
type FeedState struct {
	Key       feeds.MessageRef
	Sequence  int64
	Timestamp float64
}

// StateAfter returns the feed state once m has been appended.
func StateAfter(m *Message) FeedState {
	return FeedState{Key: m.Key, Sequence: m.Sequence, Timestamp: jsToNumber(m.timestamp)}
}

// ValidateNext checks m against the feed's state (nil = no message of this
// feed seen yet), per ssb-validate's checkInvalidCheap:
//   - with state: sequence must be state+1 (else a non-fatal error, usually a
//     duplicate), previous must be the state's id (else fatal: a fork);
//   - without state: previous null, sequence 1 and a numeric timestamp (all
//     fatal).
//
// It does not check the signature and does not modify state.
func ValidateNext(state *FeedState, m *Message) error {
	if state != nil {
		if m.Sequence != state.Sequence+1 {
			return invalid(false, "expected sequence %d but got %d on feed %s", state.Sequence+1, m.Sequence, m.Author)
		}
		if math.IsNaN(state.Timestamp) {
			return invalid(false, "feed state of %s has no numeric timestamp", m.Author)
		}
		if m.prevState != prevRef || *m.Previous != state.Key {
			return invalid(true, "expected previous %s on feed %s (fork)", state.Key, m.Author)
		}
		return nil
	}
	if m.prevState != prevNull {
		return invalid(true, "initial message must have previous: null, on feed %s", m.Author)
	}
	if m.Sequence != 1 {
		return invalid(true, "initial message must have sequence 1, got %d, on feed %s", m.Sequence, m.Author)
	}
	if m.timestamp.kind != KindNumber {
		return invalid(true, "initial message must have a numeric timestamp, on feed %s", m.Author)
	}
	return nil
}

// jsToNumber approximates JavaScript's ToNumber for a JSON value, which is
// what ssb-validate's isNaN(state.timestamp) applies to a stored timestamp.
func jsToNumber(v Value) float64 {
	switch v.kind {
	case KindNumber:
		return v.n
	case KindNull:
		return 0
	case KindBool:
		if v.b {
			return 1
		}
		return 0
	case KindString:
		return stringToNumber(v.s)
	case KindArray:
		switch len(v.items) {
		case 0:
			return 0
		case 1:
			e := v.items[0].Value
			switch e.kind {
			case KindNull:
				return 0
			case KindString:
				return stringToNumber(e.s)
			case KindNumber:
				return e.n
			case KindArray:
				return jsToNumber(e)
			}
		}
	}
	return math.NaN()
}

func stringToNumber(s string) float64 {
	f, _ := feeds.JSNumber(s) // NaN where JS gives NaN
	return f
}
