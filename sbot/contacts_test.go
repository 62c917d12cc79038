package sbot

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cask-ssb/cask/plugins/service"
)

func TestAuthorOf(t *testing.T) {
	const id = "@WyCiJ/zBUwVpx7k62KiVhEYHTd+m5LwZDW0OwOS1ON4=.ed25519"
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"compact", `{"previous":null,"author":"` + id + `","sequence":1}`, true},
		{"spaced", `{"author" : "` + id + `"}`, true},
		{"pretty", "{\n  \"author\":\n  \"" + id + "\"\n}", true},
		{"no author", `{"sequence":1}`, false},
		{"not a string", `{"author":12}`, false},
		{"not a feed", `{"author":"@nope.ed25519"}`, false},
		{"unterminated", `{"author":"` + id, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, ok := authorOf([]byte(tc.in))
			if ok != tc.ok || (ok && f.String() != id) {
				t.Fatalf("authorOf = %v, %v", f, ok)
			}
		})
	}
}

// FuzzAuthorOf: authorOf reads bytes a peer sent. It never panics, and an
// author it finds is written in the input.
func FuzzAuthorOf(f *testing.F) {
	f.Add([]byte(`{"author":"@WyCiJ/zBUwVpx7k62KiVhEYHTd+m5LwZDW0OwOS1ON4=.ed25519"}`))
	f.Add([]byte(`{"author":"`))
	f.Add([]byte(`"author"`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ok := authorOf(b)
		if ok && !strings.Contains(string(b), a.String()) {
			t.Fatalf("author %s is not in the input", a)
		}
	})
}

// TestServiceRunSupervised: a service's Run runs while the node serves;
// one that fails stops the daemon with its error.
func TestServiceRunSupervised(t *testing.T) {
	cfg := Defaults(t.TempDir())
	cfg.Listen = "off"
	n, err := New(Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	n.services = append(n.services,
		service.Service{Name: "steady", Run: func(ctx context.Context) error { close(started); <-ctx.Done(); return nil }},
		service.Service{Name: "broken", Run: func(ctx context.Context) error {
			select {
			case <-started:
			case <-ctx.Done():
			}
			return errors.New("injected failure")
		}},
	)
	done := make(chan error, 1)
	go func() { done <- n.Serve(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "service broken: injected failure") {
			t.Fatalf("serve = %v, want the service's failure", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a failed service did not stop the daemon")
	}
	// The socket is gone with the daemon.
	if c, err := net.Dial("unix", cfg.SocketPath()); err == nil {
		c.Close()
		t.Fatal("the socket still answers after the daemon stopped")
	}
}
