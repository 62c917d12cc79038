package privatebox

import (
	"crypto/ecdh"

	"golang.org/x/crypto/nacl/secretbox"
)

// Opener opens box1 ciphertexts for one identity. It keeps the X25519 key
// parsed, so each message costs one scalar multiplication (OpenKey, by
// way of curve25519.X25519, also recomputes the public key: two). Safe
// for concurrent use.
type Opener struct {
	priv *ecdh.PrivateKey
}

// NewOpener returns an Opener for an X25519 secret
// (feeds.KeyPair.Curve25519Secret).
func NewOpener(curveSecret [32]byte) (*Opener, error) {
	priv, err := ecdh.X25519().NewPrivateKey(curveSecret[:])
	if err != nil {
		return nil, err
	}
	return &Opener{priv: priv}, nil
}

// Open decrypts ciphertext; ok is false when we are not a recipient or the
// ciphertext is malformed. Same result as OpenWithCurveSecret.
func (o *Opener) Open(ciphertext []byte) ([]byte, bool) {
	mk, ok := o.OpenKey(ciphertext)
	if !ok {
		return nil, false
	}
	return OpenBody(ciphertext, mk)
}

// OpenKey is OpenKey with the parsed key.
func (o *Opener) OpenKey(ciphertext []byte) (MessageKey, bool) {
	var mk MessageKey
	if len(ciphertext) < prefixSize+headerSize+secretbox.Overhead {
		return mk, false
	}
	pub, err := ecdh.X25519().NewPublicKey(ciphertext[nonceSize:prefixSize])
	if err != nil {
		return mk, false
	}
	shared, err := o.priv.ECDH(pub)
	if err != nil { // low-order one-time key: libsodium refuses it too
		return mk, false
	}
	var nonce [nonceSize]byte
	copy(nonce[:], ciphertext[:nonceSize])
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
