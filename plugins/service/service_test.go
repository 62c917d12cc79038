package service

import (
	"context"
	"crypto/ed25519"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cask-ssb/cask/muxrpc"
)

func TestMountAccess(t *testing.T) {
	echo := func(ctx context.Context, req *muxrpc.Request) (any, error) { return req.Method.String(), nil }
	svc := Service{Name: "test", Methods: []Method{
		Async("open", Anyone, echo),
		Async("mine", Owner, echo),
		Async("picky", Owner, echo).WithCheck(func(ctx context.Context, req *muxrpc.Request) bool {
			return string(req.Args) == `["please"]`
		}),
	}}
	owner := ed25519.PublicKey(make([]byte, 32))
	stranger := ed25519.PublicKey(append(make([]byte, 31), 1))
	m := muxrpc.NewMux()
	if err := Mount(m, func(req *muxrpc.Request) bool { return string(req.RemoteKey()) == string(owner) }, svc); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		caller ed25519.PublicKey
		method string
		arg    string
		ok     bool
	}{
		{"anyone: stranger", stranger, "open", "", true},
		{"owner only: owner", owner, "mine", "", true},
		{"owner only: stranger", stranger, "mine", "", false},
		{"custom: check passes", stranger, "picky", "please", true},
		{"custom: check fails", stranger, "picky", "now", false},
		{"custom: owner always", owner, "picky", "now", true},
		{"undeclared", owner, "nothing", "", false},
		{"manifest: anyone", stranger, "manifest", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := net.Pipe()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv := muxrpc.NewEndpoint(ctx, a, m, muxrpc.Options{RemoteKey: tc.caller})
			cli := muxrpc.NewEndpoint(ctx, b, nil, muxrpc.Options{})
			defer srv.Close()
			defer cli.Close()
			var args []any
			if tc.arg != "" {
				args = append(args, tc.arg)
			}
			var out any
			err := cli.Async(ctx, &out, muxrpc.ParseMethod(tc.method), args...)
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && (err == nil || !strings.Contains(err.Error(), "not in list of allowed methods")) {
				t.Fatalf("allowed (%v, %v)", out, err)
			}
		})
	}
}

func TestMountRejectsBadDeclarations(t *testing.T) {
	f := func(ctx context.Context, req *muxrpc.Request) (any, error) { return nil, nil }
	tests := []struct {
		name string
		svcs []Service
		want string
	}{
		{"twice", []Service{{Name: "a", Methods: []Method{Async("x", Owner, f)}}, {Name: "b", Methods: []Method{Async("x", Anyone, f)}}}, "declared twice"},
		{"custom without check", []Service{{Name: "a", Methods: []Method{{Name: muxrpc.Method{"x"}, Type: muxrpc.TypeAsync, Access: Custom, async: f}}}}, "no check"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Mount(muxrpc.NewMux(), func(*muxrpc.Request) bool { return false }, tc.svcs...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Mount = %v, want %q", err, tc.want)
			}
		})
	}
}
