package store

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestCrashCloneFS: with Options.FS a crash-simulating in-memory
// filesystem, a crash (the filesystem as it was synced, plus some or none
// of what was not) keeps every acknowledged append, the store verifies, and
// no Pebble file reaches the OS's filesystem.
func TestCrashCloneFS(t *testing.T) {
	for _, tc := range []struct {
		name     string
		unsynced int // percent of unsynced blocks the crash keeps
	}{
		{"synced only", 0},
		{"half the unsynced", 50},
		{"everything", 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			fs := vfs.NewCrashableMem()
			s, err := Open(dir, Options{FS: fs, CacheSize: 1 << 20, MemTableSize: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			a, b := testFeed(1), testFeed(2)
			for i := int64(1); i <= 40; i += 10 {
				mustAppend(t, s, append(chain(a, i, i+9), chain(b, i, i+9)...))
			}
			crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: tc.unsynced, RNG: rand.New(rand.NewPCG(uint64(tc.unsynced), 1))})
			// The crashed process's store is abandoned; closing it frees
			// the lock and touches only the old filesystem.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2, err := Open(dir, Options{FS: crashed, CacheSize: 1 << 20, MemTableSize: 1 << 20})
			if err != nil {
				t.Fatalf("reopen after the crash: %v", err)
			}
			defer s2.Close()
			if err := s2.Verify(context.Background()); err != nil {
				t.Fatalf("verify after the crash: %v", err)
			}
			if seq, _, ok, err := s2.Latest(a); err != nil || !ok || seq != 40 {
				t.Errorf("feed a after the crash: seq %d ok %v err %v, want 40", seq, ok, err)
			}
			if seq, _, ok, err := s2.Latest(b); err != nil || !ok || seq != 40 {
				t.Errorf("feed b after the crash: seq %d ok %v err %v, want 40", seq, ok, err)
			}
			if msgs, _ := s2.Count(); msgs != 80 {
				t.Errorf("%d messages after the crash, want 80", msgs)
			}
			if _, err := os.Stat(filepath.Join(dir, "pebble")); !os.IsNotExist(err) {
				t.Errorf("pebble files on the OS's filesystem: %v", err)
			}
		})
	}
}
