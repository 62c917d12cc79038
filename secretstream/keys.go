package secretstream

import (
	"crypto/ed25519"
	"crypto/sha512"
	"fmt"

	"filippo.io/edwards25519"
)

// AppKey is the 32-byte network key ("caps.shs") that both sides of a
// secret handshake must share. Peers with different app keys cannot talk.
type AppKey [32]byte

// MainNetAppKey returns the app key of the main SSB network
// (1KHLiKZvAvjbY1ziZEHMXawbCEIM6qwjCDm3VYRan/s=).
func MainNetAppKey() AppKey {
	return AppKey{
		0xd4, 0xa1, 0xcb, 0x88, 0xa6, 0x6f, 0x02, 0xf8,
		0xdb, 0x63, 0x5c, 0xe2, 0x64, 0x41, 0xcc, 0x5d,
		0xac, 0x1b, 0x08, 0x42, 0x0c, 0xea, 0xac, 0x23,
		0x08, 0x39, 0xb7, 0x55, 0x84, 0x5a, 0x9f, 0xfb,
	}
}

// edPublicToCurve converts an Ed25519 public key to its Curve25519
// (Montgomery u) form, like libsodium's crypto_sign_ed25519_pk_to_curve25519:
// keys that do not decode, are non-canonical, have small order or lie
// outside the prime-order subgroup are rejected.
func edPublicToCurve(pub []byte) ([32]byte, error) {
	var out [32]byte
	if len(pub) != ed25519.PublicKeySize {
		return out, fmt.Errorf("%w: ed25519 public key has %d bytes, want %d", ErrInvalidKey, len(pub), ed25519.PublicKeySize)
	}
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return out, fmt.Errorf("%w: ed25519 public key does not decode: %w", ErrInvalidKey, err)
	}
	if [32]byte(p.Bytes()) != [32]byte(pub) {
		return out, fmt.Errorf("%w: ed25519 public key is not canonically encoded", ErrInvalidKey)
	}
	identity := edwards25519.NewIdentityPoint()
	if new(edwards25519.Point).MultByCofactor(p).Equal(identity) == 1 {
		return out, fmt.Errorf("%w: ed25519 public key has small order", ErrInvalidKey)
	}
	// p is in the prime-order subgroup iff (L-1)·p == -p.
	lm := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(scalarLMinus1(), p, edwards25519.NewScalar())
	if lm.Equal(new(edwards25519.Point).Negate(p)) != 1 {
		return out, fmt.Errorf("%w: ed25519 public key is not in the prime-order subgroup", ErrInvalidKey)
	}
	copy(out[:], p.BytesMontgomery())
	return out, nil
}

// scalarLMinus1 returns the scalar L-1, where L is the order of the
// Ed25519 base point.
func scalarLMinus1() *edwards25519.Scalar {
	// L-1 = 2^252 + 27742317777372353535851937790883648492, little-endian.
	b := [32]byte{
		0xec, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,
		0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
	}
	s, err := new(edwards25519.Scalar).SetCanonicalBytes(b[:])
	if err != nil {
		// b is a constant below L; SetCanonicalBytes cannot fail.
		return edwards25519.NewScalar()
	}
	return s
}

// edPrivateToCurve converts an Ed25519 private key to its Curve25519
// secret scalar: clamp(sha512(seed)[0:32]).
func edPrivateToCurve(priv ed25519.PrivateKey) [32]byte {
	h := sha512.Sum512(priv.Seed())
	var out [32]byte
	copy(out[:], h[:32])
	out[0] &= 248
	out[31] &= 127
	out[31] |= 64
	return out
}
