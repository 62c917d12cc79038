package blobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"sync"
	"testing"

	"github.com/cask-ssb/cask/feeds"
)

type memStore struct {
	mu sync.Mutex
	m  map[feeds.BlobRef][]byte
	on []func(feeds.BlobRef, int64)
}

func (s *memStore) Has(r feeds.BlobRef) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[r]
	return int64(len(b)), ok
}
func (s *memStore) Open(r feeds.BlobRef) (io.ReadCloser, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return io.NopCloser(bytes.NewReader(s.m[r])), int64(len(s.m[r])), nil
}
func (s *memStore) Add(r io.Reader, want *feeds.BlobRef) (feeds.BlobRef, int64, error) {
	b, err := io.ReadAll(r)
	ref := feeds.BlobRef(sha256.Sum256(b))
	if err == nil {
		s.mu.Lock()
		s.m[ref] = b
		s.mu.Unlock()
	}
	return ref, int64(len(b)), err
}
func (s *memStore) MaxSize() int64 { return 1000 }
func (s *memStore) OnAdd(f func(feeds.BlobRef, int64)) func() {
	s.on = append(s.on, f)
	return func() {}
}

// TestProcessWants: answers for blobs we have, sympathetic wants up to 3
// hops, haves remembered.
func TestProcessWants(t *testing.T) {
	st := &memStore{m: map[feeds.BlobRef][]byte{}}
	have, _, _ := st.Add(bytes.NewReader([]byte("x")), nil)
	m := New(st, nil)
	p := newPeer(context.Background(), nil)
	far, near, other := feeds.BlobRef{1}, feeds.BlobRef{2}, feeds.BlobRef{3}
	m.process(p, map[string]json.Number{
		have.String():             "-1", // we have it: answer with the size (queued until they open their stream)
		near.String():             "-2", // forward as -3
		far.String():              "-3", // -4: beyond sympathy, dropped
		other.String():            "42", // they have it
		"&junk":                   "-1",
		feeds.BlobRef{4}.String(): "x",
	})
	if p.pending[have.String()] != 1 {
		t.Fatalf("pending haves %v", p.pending)
	}
	if w := m.wants[near]; w == nil || w.hops != -3 {
		t.Fatalf("wants %v: want near at -3", m.wants)
	}
	if _, ok := m.wants[far]; ok {
		t.Fatalf("forwarded a want beyond %d hops", Sympathy)
	}
	if p.haves[other] != 42 {
		t.Fatalf("haves %v", p.haves)
	}
}

// FuzzProcess: want/have maps come from the network.
func FuzzProcess(f *testing.F) {
	f.Add([]byte(`{"&AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.sha256":-1}`))
	f.Add([]byte(`{"x":1e999,"&AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.sha256":5000}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var msg map[string]json.Number
		if json.Unmarshal(data, &msg) != nil {
			return
		}
		m := New(&memStore{m: map[feeds.BlobRef][]byte{}}, nil)
		p := newPeer(context.Background(), nil)
		m.process(p, msg)
		for _, w := range m.wants {
			if w.hops >= 0 || -w.hops > Sympathy {
				t.Fatalf("%q: want at %d hops", data, w.hops)
			}
		}
		if p.wants > MaxPeerWants || len(m.wants) > MaxWants {
			t.Fatalf("%q: %d wants held, %d for the peer", data, len(m.wants), p.wants)
		}
	})
}
