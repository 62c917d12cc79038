package sbot

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cask-ssb/cask/internal/unixsock"
)

// TestSocketPathTooLong: a repo whose socket path does not fit a unix
// socket address fails to serve with an error that says so and how to fix
// it, not with the kernel's "bind: invalid argument".
func TestSocketPathTooLong(t *testing.T) {
	for _, tc := range []struct {
		name    string
		extra   int // bytes of socket path beyond the limit
		wantErr bool
	}{
		{"one byte too long", 1, true},
		{"far too long", 200, true},
		{"at the limit", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			// base + "/" + dir + "/socket" has unixsock.MaxPath+extra bytes.
			dirLen := unixsock.MaxPath + tc.extra - len(base) - len("/") - len("/socket")
			if dirLen < 1 {
				t.Skip("temp dir path too long for this case")
			}
			repo := filepath.Join(base, strings.Repeat("r", dirLen))
			cfg := Defaults(repo)
			cfg.Listen = "off"
			n, err := New(Options{Config: cfg})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- n.Serve(ctx) }()
			if tc.wantErr {
				select {
				case err := <-done:
					cancel()
					if err == nil || !strings.Contains(err.Error(), "too long") || !strings.Contains(err.Error(), "--repo") {
						t.Fatalf("serve: %v, want a 'too long' error that names --repo", err)
					}
				case <-time.After(10 * time.Second):
					cancel()
					<-done
					t.Fatal("serve did not fail")
				}
				return
			}
			// At the limit the daemon serves; stop it.
			select {
			case err := <-done:
				cancel()
				t.Fatalf("serve failed at the limit: %v", err)
			case <-time.After(200 * time.Millisecond):
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}
