// Package privatebox implements box1 ("private-box") private messages of
// classic SSB: a message body encrypted once with a random key, and that key
// sealed for up to 7 recipients with X25519 key agreement against a one-time
// key, the recipient list hidden (auditdrivencrypto/private-box 0.3.1, as
// used by ssb-keys box/unbox).
//
// It only transforms bytes: it never parses the plaintext, stores keys or
// touches the network. box2 (private groups, ".box2") is not handled here.
package privatebox

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/secretbox"

	"github.com/cask-ssb/cask/feeds"
)

// Sizes of the box1 layout.
const (
	// MaxRecipients is private-box's DEFAULT_MAX: more is an error.
	MaxRecipients = 7
	nonceSize     = 24
	keySize       = 32
	headerSize    = 1 + keySize + secretbox.Overhead // count || body key, sealed: 49
	prefixSize    = nonceSize + keySize              // nonce || one-time public key
	// Overhead is the size of a one-recipient ciphertext of an empty plaintext.
	Overhead = prefixSize + headerSize + secretbox.Overhead
)

// ContentSuffix ends the content string of a box1 private message.
const ContentSuffix = ".box"

var (
	// ErrRecipients is wrapped when the recipient count is not 1..MaxRecipients.
	ErrRecipients = errors.New("privatebox: need 1 to 7 recipients")
	// ErrNotBox is wrapped by ParseBoxContent for strings that are not box1 content.
	ErrNotBox = errors.New("privatebox: not box1 content")
)

// MessageKey is what a recipient recovers from its header: the recipient
// count followed by the 32-byte body key. Sharing it reveals one message
// (ssb-keys unboxKey/unboxBody, ssb-ref "?unbox=" links).
type MessageKey [1 + keySize]byte

// Seal encrypts plaintext for the recipients (1..MaxRecipients feed ids)
// with fresh randomness from r (crypto/rand when nil). The result is
// nonce || one-time public key || one 49-byte header per recipient || body.
func Seal(plaintext []byte, recipients []feeds.FeedRef, r io.Reader) ([]byte, error) {
	if n := len(recipients); n < 1 || n > MaxRecipients {
		return nil, fmt.Errorf("%w: got %d", ErrRecipients, n)
	}
	pubs := make([][32]byte, len(recipients))
	for i, f := range recipients {
		p, err := feeds.Curve25519Public(f)
		if err != nil {
			return nil, fmt.Errorf("privatebox: recipient %d: %w", i, err)
		}
		pubs[i] = p
	}
	if r == nil {
		r = rand.Reader
	}
	// Same order of random draws as private-box: nonce, body key, one-time key.
	var nonce [nonceSize]byte
	var bodyKey, eph [keySize]byte
	for _, b := range [][]byte{nonce[:], bodyKey[:], eph[:]} {
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("privatebox: read random: %w", err)
		}
	}
	return SealWith(plaintext, pubs, nonce, bodyKey, eph)
}

// SealWith is Seal with every random input given: the recipients' X25519
// public keys (see feeds.Curve25519Public), the nonce, the body key and the
// one-time X25519 secret. It is deterministic; use it for test vectors.
func SealWith(plaintext []byte, recipientsCurvePublic [][32]byte, nonce [24]byte, bodyKey [32]byte, ephemeralSecret [32]byte) ([]byte, error) {
	n := len(recipientsCurvePublic)
	if n < 1 || n > MaxRecipients {
		return nil, fmt.Errorf("%w: got %d", ErrRecipients, n)
	}
	ephPub, err := curve25519.X25519(ephemeralSecret[:], curve25519.Basepoint)
	if err != nil {
		return nil, fmt.Errorf("privatebox: one-time key: %w", err)
	}
	out := make([]byte, 0, prefixSize+n*headerSize+secretbox.Overhead+len(plaintext))
	out = append(out, nonce[:]...)
	out = append(out, ephPub...)
	var mk MessageKey
	mk[0] = byte(n)
	copy(mk[1:], bodyKey[:])
	for i, pub := range recipientsCurvePublic {
		shared, err := curve25519.X25519(ephemeralSecret[:], pub[:])
		if err != nil {
			return nil, fmt.Errorf("privatebox: recipient %d: %w", i, err)
		}
		var k [32]byte
		copy(k[:], shared)
		out = secretbox.Seal(out, mk[:], &nonce, &k)
	}
	return secretbox.Seal(out, plaintext, &nonce, &bodyKey), nil
}

// Open decrypts ciphertext with the identity kp. ok is false when kp is not
// a recipient or the ciphertext is malformed. For many messages, compute
// kp.Curve25519Secret() once and use OpenWithCurveSecret.
func Open(ciphertext []byte, kp feeds.KeyPair) ([]byte, bool) {
	return OpenWithCurveSecret(ciphertext, kp.Curve25519Secret())
}

// OpenWithCurveSecret decrypts ciphertext with an X25519 secret
// (feeds.KeyPair.Curve25519Secret).
func OpenWithCurveSecret(ciphertext []byte, curveSecret [32]byte) ([]byte, bool) {
	mk, ok := OpenKey(ciphertext, curveSecret)
	if !ok {
		return nil, false
	}
	return OpenBody(ciphertext, mk)
}

// OpenKey finds and opens this recipient's header: the message key. Like
// private-box it tries header slots 0..MaxRecipients while a slot and a
// body tag still fit in the ciphertext.
func OpenKey(ciphertext []byte, curveSecret [32]byte) (MessageKey, bool) {
	var mk MessageKey
	if len(ciphertext) < prefixSize+headerSize+secretbox.Overhead {
		return mk, false
	}
	var nonce [nonceSize]byte
	copy(nonce[:], ciphertext[:nonceSize])
	shared, err := curve25519.X25519(curveSecret[:], ciphertext[nonceSize:prefixSize])
	if err != nil { // low-order one-time key: libsodium refuses it too
		return mk, false
	}
	var k [32]byte
	copy(k[:], shared)
	op := newHeaderOpener(&k, &nonce)
	for i := 0; i <= MaxRecipients; i++ {
		s := prefixSize + headerSize*i
		if s+headerSize > len(ciphertext)-secretbox.Overhead {
			return mk, false
		}
		if op.open(&mk, ciphertext[s:s+headerSize]) {
			return mk, true
		}
	}
	return mk, false
}

// OpenBody decrypts the body with a message key from OpenKey (or shared by
// another recipient).
func OpenBody(ciphertext []byte, mk MessageKey) ([]byte, bool) {
	start := prefixSize + headerSize*int(mk[0])
	if len(ciphertext) < nonceSize || start > len(ciphertext) {
		return nil, false
	}
	var nonce [nonceSize]byte
	copy(nonce[:], ciphertext[:nonceSize])
	var key [keySize]byte
	copy(key[:], mk[1:])
	pt, ok := secretbox.Open(nil, ciphertext[start:], &nonce, &key)
	if !ok {
		return nil, false
	}
	if pt == nil {
		pt = []byte{}
	}
	return pt, true
}

// BoxContent returns the message content string of a ciphertext:
// base64(ciphertext) + ".box".
func BoxContent(ciphertext []byte) string {
	return base64.StdEncoding.EncodeToString(ciphertext) + ContentSuffix
}

// ParseBoxContent returns the ciphertext of a box1 content string
// ("<base64>.box"). Unpadded base64 is accepted too.
func ParseBoxContent(s string) ([]byte, error) {
	b64, ok := strings.CutSuffix(s, ContentSuffix)
	if !ok {
		if strings.HasSuffix(s, ".box2") {
			return nil, fmt.Errorf("%w: box2 content is not supported", ErrNotBox)
		}
		return nil, fmt.Errorf("%w: no %q suffix", ErrNotBox, ContentSuffix)
	}
	ct, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		var err2 error
		if ct, err2 = base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "=")); err2 != nil {
			return nil, fmt.Errorf("%w: bad base64: %w", ErrNotBox, err)
		}
	}
	return ct, nil
}

// headerOpener opens 49-byte header slots that all share one key and nonce.
type headerOpener struct {
	key   *[32]byte
	nonce *[24]byte
}

func newHeaderOpener(key *[32]byte, nonce *[24]byte) headerOpener {
	return headerOpener{key: key, nonce: nonce}
}

func (h headerOpener) open(dst *MessageKey, slot []byte) bool {
	var buf [len(MessageKey{})]byte
	out, ok := secretbox.Open(buf[:0], slot, h.nonce, h.key)
	if !ok || len(out) != len(dst) {
		return false
	}
	copy(dst[:], out)
	clear(buf[:])
	return true
}
