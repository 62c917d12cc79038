package mesh

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
)

// Key is the mesh key: the secret-handshake network key of the mesh
// listener. A node without it fails the handshake.
type Key [32]byte

// ParseKey decodes the base64 of 32 bytes (surrounding white space is
// ignored).
func ParseKey(b []byte) (Key, error) {
	var k Key
	raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil || len(raw) != len(k) {
		return k, errors.New("mesh key: want the base64 of 32 bytes")
	}
	copy(k[:], raw)
	return k, nil
}

// String is the base64 form.
func (k Key) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// LoadKey reads a mesh key file. It refuses a file that group or others
// may read: whoever holds the key can join the mesh.
func LoadKey(path string) (Key, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Key{}, fmt.Errorf("mesh key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return Key{}, fmt.Errorf("mesh key file %s has mode %#o: run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("mesh key file: %w", err)
	}
	k, err := ParseKey(b)
	if err != nil {
		return Key{}, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// NewKey returns a random key read from r (crypto/rand if nil).
func NewKey(r io.Reader) (Key, error) {
	if r == nil {
		r = rand.Reader
	}
	var k Key
	if _, err := io.ReadFull(r, k[:]); err != nil {
		return k, fmt.Errorf("mesh key: %w", err)
	}
	return k, nil
}

// WriteKeyFile creates path (mode 0600) holding a new random key; it never
// overwrites an existing file.
func WriteKeyFile(path string) (Key, error) {
	k, err := NewKey(nil)
	if err != nil {
		return k, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return k, fmt.Errorf("mesh key file: %w", err)
	}
	if _, err := f.WriteString(k.String() + "\n"); err != nil {
		f.Close()
		return k, fmt.Errorf("mesh key file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return k, fmt.Errorf("mesh key file %s: %w", path, err)
	}
	return k, nil
}
