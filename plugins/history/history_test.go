package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/service"
)

var feedA = feeds.FeedRef{1, 2, 3}

func TestParseHistoryArgs(t *testing.T) {
	id := feedA.String()
	tests := []struct {
		name    string
		args    string
		want    store.HistoryQuery
		format  Format
		wantErr bool
	}{
		{"defaults", `[{"id":"` + id + `"}]`, store.HistoryQuery{Author: feedA, Old: true}, Format{true, true}, false},
		{"seq inclusive", `[{"id":"` + id + `","seq":5}]`, store.HistoryQuery{Author: feedA, From: 5, Old: true}, Format{true, true}, false},
		{"sequence alias", `[{"id":"` + id + `","sequence":7,"keys":false}]`, store.HistoryQuery{Author: feedA, From: 7, Old: true}, Format{false, true}, false},
		{"seq 0 and -1 mean start", `[{"id":"` + id + `","seq":-1}]`, store.HistoryQuery{Author: feedA, Old: true}, Format{true, true}, false},
		{"both equal", `[{"id":"` + id + `","seq":3,"sequence":3}]`, store.HistoryQuery{Author: feedA, From: 3, Old: true}, Format{true, true}, false},
		{"both differ", `[{"id":"` + id + `","seq":3,"sequence":4}]`, store.HistoryQuery{}, Format{}, true},
		{"live old limit", `[{"id":"` + id + `","live":true,"old":false,"limit":10}]`, store.HistoryQuery{Author: feedA, Live: true, Limit: 10}, Format{true, true}, false},
		{"limit 0 is nothing", `[{"id":"` + id + `","limit":0}]`, store.HistoryQuery{Author: feedA, Old: true, Limit: -1}, Format{true, true}, false},
		{"keys without values", `[{"id":"` + id + `","values":false}]`, store.HistoryQuery{Author: feedA, Old: true}, Format{true, false}, false},
		{"legacy positional", `["` + id + `",4]`, store.HistoryQuery{Author: feedA, From: 4, Old: true}, Format{true, true}, false},
		{"not a feed", `[{"id":"@nope"}]`, store.HistoryQuery{}, Format{}, true},
		{"no args", `[]`, store.HistoryQuery{}, Format{}, true},
		{"args not an array", `{"id":"x"}`, store.HistoryQuery{}, Format{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, f, err := ParseHistoryArgs(json.RawMessage(tc.args))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("want an error, got %+v", q)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if q != tc.want || f != tc.format {
				t.Fatalf("got %+v %+v, want %+v %+v", q, f, tc.want, tc.format)
			}
		})
	}
}

func TestParseUserStreamArgs(t *testing.T) {
	id := feedA.String()
	tests := []struct {
		args string
		from int64
		to   int64
		lim  int
		rev  bool
	}{
		{`[{"id":"` + id + `"}]`, 0, 0, 0, false},
		{`[{"id":"` + id + `","gt":3}]`, 4, 0, 0, false},
		{`[{"id":"` + id + `","gte":3,"lt":6}]`, 3, 5, 0, false},
		{`[{"id":"` + id + `","gt":2,"lte":9,"reverse":true,"limit":2}]`, 3, 9, 2, true},
		{`[{"id":"` + id + `","lt":1}]`, 0, 0, -1, false},
	}
	for _, tc := range tests {
		q, _, err := ParseUserStreamArgs(json.RawMessage(tc.args))
		if err != nil {
			t.Fatalf("%s: %v", tc.args, err)
		}
		if q.From != tc.from || q.To != tc.to || q.Limit != tc.lim || q.Reverse != tc.rev {
			t.Errorf("%s: got from %d to %d limit %d rev %v", tc.args, q.From, q.To, q.Limit, q.Reverse)
		}
	}
}

// fakeStore is an in-memory feed of n messages of feedA.
type fakeStore struct {
	n    int64
	live chan store.Record
}

func (f *fakeStore) rec(seq int64) store.Record {
	return store.Record{Seq: seq, Key: feeds.MessageRef{byte(seq)}, Author: feedA, Sequence: seq, Timestamp: float64(1000 + seq),
		Value: []byte(fmt.Sprintf(`{"sequence":%d}`, seq))}
}

func (f *fakeStore) History(ctx context.Context, q store.HistoryQuery) iter.Seq2[store.Record, error] {
	return func(yield func(store.Record, error) bool) {
		n := 0
		from := max(q.From, 1)
		if q.Old {
			for s := from; s <= f.n && (q.To == 0 || s <= q.To); s++ {
				if q.Limit > 0 && n == q.Limit {
					return
				}
				n++
				if !yield(f.rec(s), nil) {
					return
				}
			}
		}
		if q.Live {
			for {
				select {
				case r := <-f.live:
					if !yield(r, nil) {
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}
	}
}

func (f *fakeStore) Latest(a feeds.FeedRef) (int64, feeds.MessageRef, bool, error) {
	if a != feedA || f.n == 0 {
		return 0, feeds.MessageRef{}, false, nil
	}
	return f.n, feeds.MessageRef{byte(f.n)}, true, nil
}

func pair(t *testing.T, st Store) *muxrpc.Endpoint {
	t.Helper()
	a, b := net.Pipe()
	m, err := service.MountAll(Service(st))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := muxrpc.NewEndpoint(ctx, a, m, muxrpc.Options{})
	cli := muxrpc.NewEndpoint(ctx, b, muxrpc.NewMux(), muxrpc.Options{})
	t.Cleanup(func() { cli.Close(); srv.Close(); cancel() })
	return cli
}

func collect(t *testing.T, e *muxrpc.Endpoint, method string, arg any) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	src, err := e.Source(ctx, muxrpc.Method{method}, arg)
	if err != nil {
		return nil, err
	}
	var out []string
	for b, err := range src.All(ctx) {
		if err != nil {
			return out, err
		}
		out = append(out, string(b))
	}
	return out, nil
}

func TestHistoryStreamItems(t *testing.T) {
	st := &fakeStore{n: 5}
	e := pair(t, st)
	id := feedA.String()
	key3 := feeds.MessageRef{3}.String()
	tests := []struct {
		name string
		arg  map[string]any
		want []string
	}{
		{"kvt from 4", map[string]any{"id": id, "seq": 4}, []string{
			`{"key":"` + feeds.MessageRef{4}.String() + `","value":{"sequence":4},"timestamp":1004}`,
			`{"key":"` + feeds.MessageRef{5}.String() + `","value":{"sequence":5},"timestamp":1005}`,
		}},
		{"bare values", map[string]any{"id": id, "seq": 5, "keys": false}, []string{`{"sequence":5}`}},
		{"keys only", map[string]any{"id": id, "seq": 3, "limit": 1, "values": false}, []string{`"` + key3 + `"`}},
		{"beyond the end", map[string]any{"id": id, "seq": 9}, nil},
		{"limit 0", map[string]any{"id": id, "limit": 0}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := collect(t, e, "createHistoryStream", tc.arg)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %q\nwant %q", got, tc.want)
			}
		})
	}
	_, err := collect(t, e, "createHistoryStream", map[string]any{"id": "@bad"})
	var ce *muxrpc.CallError
	if !errors.As(err, &ce) || ce.Message != "@bad is not a feed" {
		t.Fatalf("bad id: %v", err)
	}
	var seq int64
	if err := e.Async(context.Background(), &seq, muxrpc.Method{"latestSequence"}, id); err != nil || seq != 5 {
		t.Fatalf("latestSequence = %d, %v", seq, err)
	}
	if err := e.Async(context.Background(), &seq, muxrpc.Method{"latestSequence"}, feeds.FeedRef{9}.String()); err == nil {
		t.Fatal("latestSequence of an unknown feed: no error")
	}
}

func TestHistoryStreamLiveAbort(t *testing.T) {
	st := &fakeStore{n: 1, live: make(chan store.Record)}
	e := pair(t, st)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	src, err := e.Source(ctx, muxrpc.Method{"createHistoryStream"}, map[string]any{"id": feedA.String(), "live": true, "keys": false})
	if err != nil {
		t.Fatal(err)
	}
	first, err := src.Next(ctx)
	if err != nil || string(first) != `{"sequence":1}` {
		t.Fatalf("first = %s, %v", first, err)
	}
	go func() { st.live <- st.rec(2) }()
	second, err := src.Next(ctx)
	if err != nil || string(second) != `{"sequence":2}` {
		t.Fatalf("live item = %s, %v", second, err)
	}
	// Aborting the stream ends the server side's live iteration: the live
	// channel gets no reader any more.
	src.Close()
	time.Sleep(200 * time.Millisecond) // the abort travels to the server
	select {
	case st.live <- st.rec(3):
		// A reader may still be between items; a second send must block.
		select {
		case st.live <- st.rec(4):
			t.Fatal("live stream still consuming after the requester aborted")
		case <-time.After(300 * time.Millisecond):
		}
	case <-time.After(300 * time.Millisecond):
	}
}

// FuzzParseArgs: the options of createHistoryStream and createUserStream
// come from the network; parsing must never panic, and an accepted query
// names a valid feed.
func FuzzParseArgs(f *testing.F) {
	id := feedA.String()
	for _, s := range []string{`[]`, `[{}]`, `[null]`, `{"id":1}`, `[{"id":"` + id + `","seq":3,"live":true,"limit":-5}]`,
		`["` + id + `",1e400]`, `[{"id":"` + id + `","gt":1e300,"lt":-1e300}]`, `[{"id":"` + id + `","keys":"yes"}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, parse := range []func(json.RawMessage) (store.HistoryQuery, Format, error){ParseHistoryArgs, ParseUserStreamArgs} {
			q, _, err := parse(json.RawMessage(data))
			if err != nil {
				continue
			}
			if q.From < 0 || q.To < 0 || q.Limit < -1 || q.Limit > 1<<31 {
				t.Fatalf("%q gives an out-of-range query %+v", data, q)
			}
			if _, err := feeds.ParseFeedRef(q.Author.String()); err != nil {
				t.Fatalf("accepted %q with author %v", data, q.Author)
			}
		}
	})
}
