package unixsock

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "socket")
	if err := os.WriteFile(path, nil, 0o644); err != nil { // a stale file
		t.Fatal(err)
	}
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a socket with 0600", fi.Mode())
	}
}

func TestListenPathTooLong(t *testing.T) {
	path := filepath.Join(t.TempDir(), strings.Repeat("d", MaxPath), "socket")
	_, err := Listen(path)
	if err == nil || !strings.Contains(err.Error(), "too long") || !strings.Contains(err.Error(), "--repo") {
		t.Fatalf("err %v, want a clear 'too long … --repo' error", err)
	}
}
