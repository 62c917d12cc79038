package blobs

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/cask-ssb/cask/feeds"
)

func TestAddHasOpen(t *testing.T) {
	s, err := Open(t.TempDir(), 1024)
	if err != nil {
		t.Fatal(err)
	}
	var added []feeds.BlobRef
	stop := s.OnAdd(func(r feeds.BlobRef, _ int64) { added = append(added, r) })
	defer stop()
	data := []byte("hello blobs")
	ref, n, err := s.Add(bytes.NewReader(data), nil)
	if err != nil || n != int64(len(data)) || ref != feeds.BlobRef(sha256.Sum256(data)) {
		t.Fatalf("Add = %v %d %v", ref, n, err)
	}
	if size, ok := s.Has(ref); !ok || size != n {
		t.Fatalf("Has = %d %v", size, ok)
	}
	rc, size, err := s.Open(ref)
	if err != nil || size != n {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) {
		t.Fatalf("read %q", got)
	}
	// Again: no new notification.
	if _, _, err := s.Add(bytes.NewReader(data), &ref); err != nil {
		t.Fatal(err)
	}
	if len(added) != 1 {
		t.Fatalf("notified %d times", len(added))
	}
	// Layout of JS multiblob.
	if _, err := os.Stat(filepath.Join(s.dir, "sha256", ref.String()[:0]+hexOf(ref)[:2], hexOf(ref)[2:])); err != nil {
		t.Fatalf("layout: %v", err)
	}
	// Mismatch, too large, not found, the empty blob.
	other := feeds.BlobRef{9}
	if _, _, err := s.Add(bytes.NewReader([]byte("x")), &other); !errors.Is(err, ErrMismatch) {
		t.Fatalf("mismatch: %v", err)
	}
	if _, _, err := s.Add(bytes.NewReader(make([]byte, 1024)), nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("at the limit: %v", err)
	}
	if _, _, err := s.Add(bytes.NewReader(make([]byte, 1023)), nil); err != nil {
		t.Fatalf("just under the limit: %v", err)
	}
	if _, _, err := s.Open(other); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open missing: %v", err)
	}
	empty := feeds.BlobRef(sha256.Sum256(nil))
	if size, ok := s.Has(empty); !ok || size != 0 {
		t.Fatal("the empty blob is always present")
	}
	if entries, _ := os.ReadDir(filepath.Join(s.dir, "tmp")); len(entries) != 0 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

func hexOf(r feeds.BlobRef) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 64)
	for i, c := range r {
		b[2*i], b[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(b)
}
