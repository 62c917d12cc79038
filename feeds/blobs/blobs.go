// Package blobs is the content-addressed blob store of a node: immutable
// files named by the sha256 of their bytes, in REPO/blobs/sha256/xx/<rest>
// (the layout of JS multiblob).
//
// A blob is written to a temporary file, hashed while written, fsync'd and
// renamed into place, so a crash never leaves a partial blob under its
// name. The store never accepts a blob of MaxSize bytes or more.
package blobs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/cask-ssb/cask/feeds"
)

// DefaultMaxSize is ssb-blobs' default limit: blobs must be smaller.
const DefaultMaxSize = 5 * 1024 * 1024

// Errors.
var (
	ErrNotFound = errors.New("blob not found")
	ErrTooLarge = errors.New("blob too large")
	ErrMismatch = errors.New("blob does not match its id")
)

// Store is safe for concurrent use.
type Store struct {
	dir string
	max int64

	mu        sync.Mutex
	listeners map[int]func(feeds.BlobRef, int64)
	nextID    int
}

// Open opens (creating) the store in dir. max 0 means DefaultMaxSize.
func Open(dir string, max int64) (*Store, error) {
	if max <= 0 {
		max = DefaultMaxSize
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("blobs: %w", err)
	}
	return &Store{dir: dir, max: max, listeners: map[int]func(feeds.BlobRef, int64){}}, nil
}

// MaxSize is the exclusive size limit.
func (s *Store) MaxSize() int64 { return s.max }

func (s *Store) path(ref feeds.BlobRef) string {
	h := hex.EncodeToString(ref[:])
	return filepath.Join(s.dir, "sha256", h[:2], h[2:])
}

// Has returns the size of a stored blob.
func (s *Store) Has(ref feeds.BlobRef) (int64, bool) {
	if ref == emptyBlob {
		return 0, true
	}
	fi, err := os.Stat(s.path(ref))
	if err != nil {
		return 0, false
	}
	return fi.Size(), true
}

// emptyBlob is the id of zero bytes: always present.
var emptyBlob = feeds.BlobRef(sha256.Sum256(nil))

// Open returns a stored blob for reading.
func (s *Store) Open(ref feeds.BlobRef) (io.ReadCloser, int64, error) {
	if ref == emptyBlob {
		return io.NopCloser(eofReader{}), 0, nil
	}
	f, err := os.Open(s.path(ref))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// Add stores what r yields and returns its id and size. If want is not
// nil, the bytes must hash to it (ErrMismatch otherwise, nothing stored).
func (s *Store) Add(r io.Reader, want *feeds.BlobRef) (feeds.BlobRef, int64, error) {
	tmp, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "blob-")
	if err != nil {
		return feeds.BlobRef{}, 0, fmt.Errorf("blobs: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, s.max))
	if err != nil {
		return feeds.BlobRef{}, 0, fmt.Errorf("blobs: write: %w", err)
	}
	if n >= s.max {
		// At the limit: is there more? (size >= max is refused)
		return feeds.BlobRef{}, n, fmt.Errorf("%w: %d bytes or more (limit: under %d)", ErrTooLarge, n, s.max)
	}
	var ref feeds.BlobRef
	copy(ref[:], h.Sum(nil))
	if want != nil && *want != ref {
		return ref, n, fmt.Errorf("%w: got %s, want %s", ErrMismatch, ref, want)
	}
	if _, ok := s.Has(ref); ok {
		return ref, n, nil
	}
	if err := tmp.Sync(); err != nil {
		return ref, n, fmt.Errorf("blobs: sync: %w", err)
	}
	dst := s.path(ref)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return ref, n, fmt.Errorf("blobs: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return ref, n, fmt.Errorf("blobs: %w", err)
	}
	if d, err := os.Open(filepath.Dir(dst)); err == nil {
		d.Sync()
		d.Close()
	}
	s.mu.Lock()
	ls := make([]func(feeds.BlobRef, int64), 0, len(s.listeners))
	for _, l := range s.listeners {
		ls = append(ls, l)
	}
	s.mu.Unlock()
	for _, l := range ls {
		l(ref, n)
	}
	return ref, n, nil
}

// OnAdd calls f after every new blob is stored; the returned func stops it.
func (s *Store) OnAdd(f func(feeds.BlobRef, int64)) (cancel func()) {
	s.mu.Lock()
	id := s.nextID
	s.nextID++
	s.listeners[id] = f
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.listeners, id)
		s.mu.Unlock()
	}
}
