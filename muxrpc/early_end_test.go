package muxrpc

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestServerEndsSinkEarlyWithError: a sink or duplex call that the server
// ends with an error before the client finished writing must report that
// error to the client, from Write or from Close, never a bare
// ErrStreamClosed and never success. The race between the server's error
// end and the client's writes (and the handler closing its Source before
// it returns) is exercised many times.
func TestServerEndsSinkEarlyWithError(t *testing.T) {
	const limit = 3 // items the server reads before failing
	tooLarge := errors.New("blob too large: limit 3 items")
	mux := NewMux()
	// The handler reads a few items, stops reading (closing its Source,
	// as a store that hit its limit does) and fails.
	failing := func(ctx context.Context, in *Source) error {
		for i := 0; i < limit; i++ {
			if _, err := in.Next(ctx); err != nil {
				return err
			}
		}
		_ = in.Close()
		return tooLarge
	}
	// This one breaks out of All, which closes the Source from inside the
	// iterator, then fails.
	breaking := func(ctx context.Context, in *Source) error {
		n := 0
		for _, err := range in.All(ctx) {
			if err != nil {
				return err
			}
			if n++; n == limit {
				break
			}
		}
		return tooLarge
	}
	mux.RegisterSink(Method{"sink", "fail"}, func(ctx context.Context, _ *Request, in *Source) error { return failing(ctx, in) })
	mux.RegisterSink(Method{"sink", "break"}, func(ctx context.Context, _ *Request, in *Source) error { return breaking(ctx, in) })
	mux.RegisterDuplex(Method{"duplex", "fail"}, func(ctx context.Context, _ *Request, in *Source, _ *Sink) error {
		return failing(ctx, in)
	})
	mux.RegisterDuplex(Method{"duplex", "break"}, func(ctx context.Context, _ *Request, in *Source, _ *Sink) error {
		return breaking(ctx, in)
	})

	for _, kind := range []string{"pipe", "tcp"} {
		t.Run(kind, func(t *testing.T) {
			var client *Endpoint
			if kind == "pipe" {
				_, client = pipePair(t, mux, nil, Options{}, Options{})
			} else {
				_, client = tcpPair(t, mux, nil, Options{}, Options{})
			}
			chunk := make([]byte, 1000)
			for _, tc := range []struct {
				method Method
				duplex bool
			}{
				{Method{"sink", "fail"}, false},
				{Method{"sink", "break"}, false},
				{Method{"duplex", "fail"}, true},
				{Method{"duplex", "break"}, true},
			} {
				for round := 0; round < 100; round++ {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					var snk *Sink
					var src *Source
					var err error
					if tc.duplex {
						src, snk, err = client.Duplex(ctx, tc.method)
					} else {
						snk, err = client.Sink(ctx, tc.method)
					}
					if err != nil {
						cancel()
						t.Fatal(err)
					}
					// Write more than the server takes; stop at the
					// first error, as a client does.
					var got error
					for i := 0; i < 50 && got == nil; i++ {
						got = snk.WriteRaw(FlagBinary, chunk)
					}
					if got == nil {
						got = snk.Close()
					}
					if tc.duplex && got == nil {
						// A duplex reports the server's error on its
						// Source.
						for {
							if _, err := src.Next(ctx); err != nil {
								got = err
								break
							}
						}
					}
					cancel()
					if got == nil {
						t.Fatalf("%s round %d: the call succeeded although the server failed it", tc.method, round)
					}
					var ce *CallError
					if !errors.As(got, &ce) || !strings.Contains(ce.Message, "too large") {
						t.Fatalf("%s round %d: client saw %v, want the server's error %q", tc.method, round, got, tooLarge)
					}
				}
			}
		})
	}
}

// TestErrorRepliesQuoteShortPrefix: an error reply never echoes a peer's
// long argument in full, while normal names stay exactly as JS words them.
func TestErrorRepliesQuoteShortPrefix(t *testing.T) {
	mux := NewMux()
	_, client := pipePair(t, mux, nil, Options{}, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, tc := range []struct {
		method Method
		want   string
		max    int
	}{
		{Method{"ebt", "replicate"}, "method:ebt,replicate is not in list of allowed methods", 0},
		{Method{strings.Repeat("x", 1<<20)}, "method:" + strings.Repeat("x", MaxQuoted) + "… is not in list of allowed methods", 0},
		{Method{strings.Repeat("é", 1000)}, "", 2 * MaxQuoted},
	} {
		err := client.Async(ctx, nil, tc.method)
		var ce *CallError
		if !errors.As(err, &ce) {
			t.Fatalf("%.40s: %.300v", tc.method, err)
		}
		if tc.want != "" && ce.Message != tc.want {
			t.Fatalf("message %.200q, want %.200q", ce.Message, tc.want)
		}
		if tc.max > 0 && len(ce.Message) > tc.max {
			t.Fatalf("message of %d bytes quotes too much", len(ce.Message))
		}
	}
	// A handler that quotes a whole argument is capped too.
	mux.RegisterAsync(Method{"echo"}, func(_ context.Context, req *Request) (any, error) {
		return nil, errors.New("invalid id:" + string(req.Args))
	})
	err := client.Async(ctx, nil, Method{"echo"}, strings.Repeat("A", 1<<20))
	var ce *CallError
	if !errors.As(err, &ce) || len(ce.Message) > MaxErrorMessage+len("…") || !strings.HasPrefix(ce.Message, `invalid id:["AAAA`) {
		t.Fatalf("echo error: %.100v", err)
	}
}
