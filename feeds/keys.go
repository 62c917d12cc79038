package feeds

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/edwards25519"
)

// ErrInvalidSecret is wrapped by every error about the content of a secret
// file (as opposed to errors reading or writing it).
var ErrInvalidSecret = errors.New("invalid ssb secret")

// KeyPair is an identity: an ed25519 key pair and its feed id.
// Private has the 64-byte libsodium layout seed || public key.
type KeyPair struct {
	ID      FeedRef
	Private ed25519.PrivateKey
}

// String returns the feed id only, so that printing a KeyPair never shows
// the private key.
func (kp KeyPair) String() string { return kp.ID.String() }

// GoString is like String (for %#v).
func (kp KeyPair) GoString() string { return "feeds.KeyPair{ID: " + kp.ID.String() + "}" }

// LogValue implements slog.LogValuer: only the feed id is logged.
func (kp KeyPair) LogValue() slog.Value { return slog.StringValue(kp.ID.String()) }

// GenerateKeyPair creates a new identity from 32 bytes of r (crypto/rand
// when r is nil).
func GenerateKeyPair(r io.Reader) (KeyPair, error) {
	if r == nil {
		r = rand.Reader
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(r, seed); err != nil {
		return KeyPair{}, fmt.Errorf("generate key pair: read seed: %w", err)
	}
	return KeyPairFromSeed(seed)
}

// KeyPairFromSeed derives the identity of a 32-byte ed25519 seed (the same
// key libsodium's crypto_sign_seed_keypair and ssb-keys' generate give).
func KeyPairFromSeed(seed []byte) (KeyPair, error) {
	if len(seed) != ed25519.SeedSize {
		return KeyPair{}, fmt.Errorf("key pair from seed: seed has %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	var id FeedRef
	copy(id[:], priv[ed25519.SeedSize:])
	return KeyPair{ID: id, Private: priv}, nil
}

// Sign returns the 64-byte ed25519 signature of msg. kp must hold a
// private key.
func (kp KeyPair) Sign(msg []byte) []byte { return ed25519.Sign(kp.Private, msg) }

// Curve25519Secret returns the X25519 secret of the identity (libsodium
// crypto_sign_ed25519_sk_to_curve25519): sha512(seed)[:32], clamped.
// Used for box1 private messages.
func (kp KeyPair) Curve25519Secret() [32]byte {
	h := sha512.Sum512(kp.Private.Seed())
	var s [32]byte
	copy(s[:], h[:32])
	s[0] &= 248
	s[31] &= 127
	s[31] |= 64
	return s
}

// primeOrderMinus1 is the group order l-1, little-endian: [l-1]P + P is the
// identity exactly when P lies in the prime-order subgroup.
var primeOrderMinus1 = [32]byte{
	0xec, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
}

// Curve25519Public converts a feed's ed25519 public key to its X25519
// public key (libsodium crypto_sign_ed25519_pk_to_curve25519: the
// Montgomery u = (1+y)/(1-y)). Like libsodium it rejects keys that do not
// decode to a curve point, points of small order, and points outside the
// prime-order subgroup.
func Curve25519Public(f FeedRef) ([32]byte, error) {
	var out [32]byte
	p, err := new(edwards25519.Point).SetBytes(f[:])
	if err != nil {
		return out, fmt.Errorf("curve25519 public key of %s: not a curve point: %w", f, err)
	}
	id := edwards25519.NewIdentityPoint()
	if new(edwards25519.Point).MultByCofactor(p).Equal(id) == 1 {
		return out, fmt.Errorf("curve25519 public key of %s: point of small order", f)
	}
	l1, err := edwards25519.NewScalar().SetCanonicalBytes(primeOrderMinus1[:])
	if err != nil {
		return out, fmt.Errorf("curve25519 public key: group order constant: %w", err)
	}
	q := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(l1, p, edwards25519.NewScalar())
	if q.Add(q, p).Equal(id) != 1 {
		return out, fmt.Errorf("curve25519 public key of %s: point not in the prime-order subgroup", f)
	}
	copy(out[:], p.BytesMontgomery())
	return out, nil
}

// secretJSON is the object of an ssb-keys secret file, fields in file order.
type secretJSON struct {
	Curve   string `json:"curve"`
	Public  string `json:"public"`
	Private string `json:"private"`
	ID      string `json:"id"`
}

const secretHeader = `# WARNING: Never show this to anyone.
# WARNING: Never edit it or use it on multiple devices at once.
#
# This is your SECRET, it gives you magical powers. With your secret you can
# sign your messages so that your friends can verify that the messages came
# from you. If anyone learns your secret, they can use it to impersonate you.
#
# If you use this secret on more than one device you will create a fork and
# your friends will stop replicating your content.
#
`

const secretFooter = `
#
# The only part of this file that's safe to share is your public name:
#
#   `

// FormatSecret returns the secret file content for kp, byte for byte what
// ssb-keys writes: the warning comments, the JSON object pretty-printed
// with two spaces, and a last comment line with the public id (no trailing
// newline).
func FormatSecret(kp KeyPair) []byte {
	pub := base64.StdEncoding.EncodeToString(kp.ID[:]) + feedSuffix
	obj := secretJSON{
		Curve:   "ed25519",
		Public:  pub,
		Private: base64.StdEncoding.EncodeToString(kp.Private) + feedSuffix,
		ID:      kp.ID.String(),
	}
	body, _ := json.MarshalIndent(obj, "", "  ") // cannot fail: four base64 strings
	var b bytes.Buffer
	b.WriteString(secretHeader)
	b.Write(body)
	b.WriteString(secretFooter)
	b.WriteString(kp.ID.String())
	return b.Bytes()
}

// ParseSecret reads the content of an ssb-keys secret file with ssb-keys'
// algorithm (reconstructKeys): the bytes are read as Node's "ascii" (high
// bit cleared), every "#" comment and the white space before it is removed,
// the remaining lines are joined without separator and parsed as JSON. The
// "legacy" layout (just the private key string) is accepted too.
//
// The key must be ed25519; the public key and id, when present, must
// belong to the private key.
func ParseSecret(data []byte) (KeyPair, error) {
	text := stripSecretComments(data)
	var obj secretJSON
	if err := decodeSecretJSON(text, &obj); err != nil {
		if !isLegacySecret(text) {
			return KeyPair{}, fmt.Errorf("%w: not JSON: %w", ErrInvalidSecret, err)
		}
		obj = secretJSON{Private: text}
	}
	curve := obj.Curve
	if curve == "" {
		// ssb-keys getCurve: fall back to the tag of the public key.
		if i := strings.LastIndexByte(obj.Public, '.'); i >= 0 {
			curve = obj.Public[i+1:]
		} else if i := strings.LastIndexByte(obj.Private, '.'); i >= 0 {
			curve = obj.Private[i+1:]
		}
	}
	if curve != "ed25519" {
		return KeyPair{}, fmt.Errorf("%w: unsupported curve %q, want ed25519", ErrInvalidSecret, curve)
	}
	if obj.Private == "" {
		return KeyPair{}, fmt.Errorf("%w: no private key", ErrInvalidSecret)
	}
	priv, err := decodeTagged(obj.Private, ed25519.PrivateKeySize)
	if err != nil {
		return KeyPair{}, fmt.Errorf("%w: private key: %w", ErrInvalidSecret, err)
	}
	kp, err := KeyPairFromSeed(priv[:ed25519.SeedSize])
	if err != nil {
		return KeyPair{}, fmt.Errorf("%w: %w", ErrInvalidSecret, err)
	}
	if !bytes.Equal(priv[ed25519.SeedSize:], kp.ID[:]) {
		return KeyPair{}, fmt.Errorf("%w: private key does not match its public half", ErrInvalidSecret)
	}
	if obj.Public != "" {
		pub, err := decodeTagged(obj.Public, ed25519.PublicKeySize)
		if err != nil {
			return KeyPair{}, fmt.Errorf("%w: public key: %w", ErrInvalidSecret, err)
		}
		if !bytes.Equal(pub, kp.ID[:]) {
			return KeyPair{}, fmt.Errorf("%w: public key %q does not match the private key (which is %s)", ErrInvalidSecret, obj.Public, kp.ID)
		}
	}
	// ssb-keys: an id without sigil is replaced by "@" + public.
	if obj.ID != "" && strings.IndexByte("@%&", obj.ID[0]) >= 0 {
		id, err := ParseFeedRef(obj.ID)
		if err != nil {
			return KeyPair{}, fmt.Errorf("%w: id: %w", ErrInvalidSecret, err)
		}
		if id != kp.ID {
			return KeyPair{}, fmt.Errorf("%w: id %s does not match the private key (which is %s)", ErrInvalidSecret, id, kp.ID)
		}
	}
	return kp, nil
}

// stripSecretComments applies ssb-keys' reconstructKeys text steps.
func stripSecretComments(data []byte) string {
	b := make([]byte, 0, len(data))
	for _, c := range data {
		c &= 0x7f // Node's "ascii" decoding
		if c == '#' {
			// /\s*#[^\n]*/g: drop the white space before the comment too.
			for len(b) > 0 && isASCIISpace(b[len(b)-1]) {
				b = b[:len(b)-1]
			}
		}
		b = append(b, c)
	}
	// Now remove each "#" up to (not including) the next "\n".
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '#' {
			for i < len(b) && b[i] != '\n' {
				i++
			}
			if i == len(b) {
				break
			}
		}
		if b[i] != '\n' {
			out = append(out, b[i])
		}
	}
	return string(out)
}

func isASCIISpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// decodeSecretJSON parses the joined text as one JSON object with exactly
// the field names ssb-keys uses (case-sensitive, last duplicate wins).
func decodeSecretJSON(text string, obj *secretJSON) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &fields); err != nil {
		return err
	}
	if fields == nil {
		return errors.New("not a JSON object")
	}
	for name, dst := range map[string]*string{"curve": &obj.Curve, "public": &obj.Public, "private": &obj.Private, "id": &obj.ID} {
		raw, ok := fields[name]
		if !ok || string(raw) == "null" {
			continue
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return fmt.Errorf("field %q is not a string", name)
		}
	}
	return nil
}

// isLegacySecret reports whether text is only a tagged private key string.
func isLegacySecret(text string) bool {
	return strings.HasSuffix(text, feedSuffix) && !strings.ContainsAny(text, "{}\" ")
}

// decodeTagged decodes "<base64>.<tag>" (optionally with a sigil), checking
// the decoded length.
func decodeTagged(s string, size int) ([]byte, error) {
	if s != "" && strings.IndexByte("@%&", s[0]) >= 0 {
		s = s[1:]
	}
	if i := strings.IndexByte(s, '.'); i >= 0 {
		if tag := s[i+1:]; tag != "ed25519" {
			return nil, fmt.Errorf("tag %q, want ed25519", tag)
		}
		s = s[:i]
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("bad base64: %w", err)
	}
	if len(b) != size {
		return nil, fmt.Errorf("%d bytes, want %d", len(b), size)
	}
	return b, nil
}

// ReadSecret reads and parses the secret file at path.
func ReadSecret(path string) (KeyPair, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return KeyPair{}, fmt.Errorf("read secret: %w", err)
	}
	kp, err := ParseSecret(data)
	if err != nil {
		return KeyPair{}, fmt.Errorf("read secret %s: %w", path, err)
	}
	return kp, nil
}

// WriteSecret writes kp to a new file at path in the ssb-keys layout, mode
// 0600, and syncs it. It never overwrites: if path exists the error wraps
// fs.ErrExist. The parent directory must exist.
func WriteSecret(path string, kp KeyPair) (err error) {
	if len(kp.Private) != ed25519.PrivateKeySize {
		return fmt.Errorf("write secret %s: key pair has no private key", path)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write secret: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(path) // ours: O_EXCL created it
		}
	}()
	if _, err := f.Write(FormatSecret(kp)); err != nil {
		return fmt.Errorf("write secret %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write secret %s: sync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write secret %s: close: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // make the new directory entry durable; best effort
		_ = d.Close()
	}
	return nil
}

// LoadOrCreateSecret reads the secret file at path, or, when it does not
// exist, creates its directory (mode 0700) and a new identity there.
// created reports whether a new identity was made.
func LoadOrCreateSecret(path string) (kp KeyPair, created bool, err error) {
	kp, err = ReadSecret(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return kp, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return KeyPair{}, false, fmt.Errorf("create secret directory: %w", err)
	}
	kp, err = GenerateKeyPair(nil)
	if err != nil {
		return KeyPair{}, false, err
	}
	if err := WriteSecret(path, kp); err != nil {
		if errors.Is(err, fs.ErrExist) { // created concurrently: use that one
			kp, err = ReadSecret(path)
			return kp, false, err
		}
		return KeyPair{}, false, err
	}
	return kp, true, nil
}
