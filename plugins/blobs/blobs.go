// Package blobs serves ssb-blobs: blobs.get, blobs.getSlice, blobs.has and
// blobs.createWants for every peer, and blobs.add, blobs.size and
// blobs.want for the owner. It runs the want/have exchange: each side of
// a connection calls createWants on the other; wants (negative hop counts)
// and haves (sizes) flow on those streams, and a wanted blob is fetched
// with blobs.get from a peer that has it, checked against its id and
// stored. Wants of peers are forwarded up to 3 hops (sympathy).
//
// The package keeps no state on disk of its own: blobs live in the Store.
package blobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/service"
)

// Store holds the blobs.
type Store interface {
	Has(ref feeds.BlobRef) (int64, bool)
	Open(ref feeds.BlobRef) (io.ReadCloser, int64, error)
	Add(r io.Reader, want *feeds.BlobRef) (feeds.BlobRef, int64, error)
	MaxSize() int64
	OnAdd(f func(feeds.BlobRef, int64)) (cancel func())
}

// Sympathy is how many hops away a want is still forwarded.
const Sympathy = 3

// chunkSize is the size of blobs.get data packets (what JS sends).
const chunkSize = 64 * 1024

// Manager runs the want/have exchange for all connections.
type Manager struct {
	st  Store
	log *slog.Logger

	mu       sync.Mutex
	wants    map[feeds.BlobRef]int // negative hops: -1 = we want it ourselves
	waiters  map[feeds.BlobRef][]chan struct{}
	peers    map[*muxrpc.Endpoint]*peer
	fetching map[feeds.BlobRef]bool
}

type peer struct {
	e     *muxrpc.Endpoint
	out   *muxrpc.Sink // the createWants stream we serve to this peer
	haves map[feeds.BlobRef]int64
	ctx   context.Context
	// pending haves to send once the peer opens its createWants stream.
	pending map[string]int64
}

// New returns a Manager over st.
func New(st Store, log *slog.Logger) *Manager {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{st: st, log: log, wants: map[feeds.BlobRef]int{}, waiters: map[feeds.BlobRef][]chan struct{}{},
		peers: map[*muxrpc.Endpoint]*peer{}, fetching: map[feeds.BlobRef]bool{}}
	st.OnAdd(m.added)
	return m
}

// added: a blob arrived; tell every peer we have it and wake waiters.
func (m *Manager) added(ref feeds.BlobRef, size int64) {
	m.mu.Lock()
	_, wanted := m.wants[ref]
	delete(m.wants, ref)
	ws := m.waiters[ref]
	delete(m.waiters, ref)
	m.mu.Unlock()
	for _, w := range ws {
		close(w)
	}
	if wanted {
		m.announce(map[string]int64{ref.String(): size}, nil)
	}
}

// announce writes a wants/haves map to every peer's served stream (except
// skip).
func (m *Manager) announce(msg map[string]int64, skip *peer) {
	m.mu.Lock()
	var outs []*muxrpc.Sink
	for _, p := range m.peers {
		if p != skip && p.out != nil {
			outs = append(outs, p.out)
		}
	}
	m.mu.Unlock()
	for _, o := range outs {
		_ = o.Write(msg)
	}
}

func (m *Manager) peerFor(ctx context.Context, e *muxrpc.Endpoint) *peer {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.peers[e]
	if p == nil {
		p = &peer{e: e, haves: map[feeds.BlobRef]int64{}, ctx: ctx}
		m.peers[e] = p
		// No goroutine waits for the end: an idle peer costs less.
		context.AfterFunc(e.Context(), func() {
			m.mu.Lock()
			delete(m.peers, e)
			m.mu.Unlock()
		})
	}
	return p
}

// Connected starts the exchange with a peer: we call its createWants and
// process what it says until the connection ends. ctx should live as long
// as the connection.
func (m *Manager) Connected(ctx context.Context, e *muxrpc.Endpoint) {
	p := m.peerFor(ctx, e)
	src, err := e.Source(ctx, muxrpc.Method{"blobs", "createWants"})
	if err != nil {
		return
	}
	defer src.Close()
	for body, err := range src.All(ctx) {
		if err != nil {
			m.log.Debug("blobs: createWants ended", "err", err)
			return
		}
		var msg map[string]json.Number
		if json.Unmarshal(body, &msg) != nil {
			continue
		}
		m.process(p, msg)
	}
}

// process handles one wants/haves map from peer p.
func (m *Manager) process(p *peer, msg map[string]json.Number) {
	reply := map[string]int64{}
	forward := map[string]int64{}
	for k, num := range msg {
		ref, err := feeds.ParseBlobRef(k)
		if err != nil {
			continue
		}
		v, err := num.Int64()
		if err != nil || v == 0 {
			continue
		}
		if v < 0 {
			if size, ok := m.st.Has(ref); ok {
				reply[k] = size
				continue
			}
			hops := int(v) - 1
			if -hops > Sympathy {
				continue
			}
			m.mu.Lock()
			cur, wanted := m.wants[ref]
			if !wanted || cur < hops {
				m.wants[ref] = hops
				forward[k] = int64(hops)
			}
			m.mu.Unlock()
			continue
		}
		m.mu.Lock()
		p.haves[ref] = v
		_, wanted := m.wants[ref]
		m.mu.Unlock()
		if wanted && v < m.st.MaxSize() {
			m.fetch(ref)
		}
	}
	if len(reply) > 0 {
		m.mu.Lock()
		out := p.out
		if out == nil {
			if p.pending == nil {
				p.pending = map[string]int64{}
			}
			for k, v := range reply {
				p.pending[k] = v
			}
		}
		m.mu.Unlock()
		if out != nil {
			_ = out.Write(reply)
		}
	}
	if len(forward) > 0 {
		m.announce(forward, p)
		for k := range forward {
			ref, _ := feeds.ParseBlobRef(k)
			m.fetch(ref) // maybe someone already said they have it
		}
	}
}

// fetch gets a wanted blob from a peer that has it, trying the others
// when one fails.
func (m *Manager) fetch(ref feeds.BlobRef) {
	m.mu.Lock()
	if m.fetching[ref] {
		m.mu.Unlock()
		return
	}
	var cands []*peer
	for _, p := range m.peers {
		if size, ok := p.haves[ref]; ok && size < m.st.MaxSize() {
			cands = append(cands, p)
		}
	}
	if len(cands) == 0 {
		m.mu.Unlock()
		return
	}
	m.fetching[ref] = true
	m.mu.Unlock()
	go func() {
		defer func() {
			m.mu.Lock()
			delete(m.fetching, ref)
			m.mu.Unlock()
		}()
		for _, p := range cands {
			if err := m.getFrom(p, ref); err != nil {
				m.log.Info("blobs: fetch failed", "blob", ref.String(), "err", err)
				continue
			}
			return
		}
	}()
}

func (m *Manager) getFrom(p *peer, ref feeds.BlobRef) error {
	src, err := p.e.Source(p.ctx, muxrpc.Method{"blobs", "get"}, map[string]any{"key": ref.String(), "max": m.st.MaxSize()})
	if err != nil {
		return err
	}
	defer src.Close()
	_, _, err = m.st.Add(sourceReader(p.ctx, src), &ref)
	return err
}

// Has reports whether the blob is stored, and its size.
func (m *Manager) Has(ref feeds.BlobRef) (int64, bool) { return m.st.Has(ref) }

// Want registers our own want for ref and waits until the blob is stored
// (true) or ctx ends.
func (m *Manager) Want(ctx context.Context, ref feeds.BlobRef) (bool, error) {
	if _, ok := m.st.Has(ref); ok {
		return true, nil
	}
	ch := make(chan struct{})
	m.mu.Lock()
	m.waiters[ref] = append(m.waiters[ref], ch)
	cur, wanted := m.wants[ref]
	announce := !wanted || cur < -1
	m.wants[ref] = -1
	m.mu.Unlock()
	if announce {
		m.announce(map[string]int64{ref.String(): -1}, nil)
	}
	m.fetch(ref)
	if _, ok := m.st.Has(ref); ok { // arrived meanwhile
		return true, nil
	}
	select {
	case <-ch:
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// serveWants is the createWants stream we serve to a peer: a snapshot of
// our wants, then whatever we announce, until the peer or ctx ends it.
func (m *Manager) serveWants(ctx context.Context, req *muxrpc.Request, out *muxrpc.Sink) error {
	p := m.peerFor(ctx, req.Endpoint)
	m.mu.Lock()
	p.out = out
	snap := make(map[string]int64, len(m.wants))
	for ref, h := range m.wants {
		snap[ref.String()] = int64(h)
	}
	for k, v := range p.pending {
		snap[k] = v
	}
	p.pending = nil
	m.mu.Unlock()
	if err := out.Write(snap); err != nil {
		return nil
	}
	select {
	case <-ctx.Done():
	case <-out.Done():
	}
	return nil
}

// blobArg reads the argument of get/getSlice/has/size/want: an id, or an
// object with key, id or hash.
type blobArg struct {
	Key   string `json:"key"`
	ID    string `json:"id"`
	Hash  string `json:"hash"`
	Size  *int64 `json:"size"`
	Max   *int64 `json:"max"`
	Start *int64 `json:"start"`
	End   *int64 `json:"end"`
}

func parseArg(req *muxrpc.Request) (feeds.BlobRef, blobArg, error) {
	var a blobArg
	var s string
	if err := req.Arg(0, &s); err != nil {
		if err := req.Arg(0, &a); err != nil {
			return feeds.BlobRef{}, a, errors.New("want a blob id")
		}
		s = a.Key
		if s == "" {
			s = a.ID
		}
		if s == "" {
			s = a.Hash
		}
	}
	ref, err := feeds.ParseBlobRef(s)
	if err != nil {
		return ref, a, fmt.Errorf("invalid id:%s", muxrpc.ShortArg(s))
	}
	return ref, a, nil
}

// Service declares the blobs methods: blobs.get, getSlice, has and
// createWants for anyone (as ssb-blobs), add, size and want for the owner.
// On every peer connection it runs the want/have exchange (Connected).
func (m *Manager) Service() service.Service {
	wants := service.Source("blobs.createWants", service.Anyone, m.serveWants)
	get := func(ctx context.Context, req *muxrpc.Request, out *muxrpc.Sink, slice bool) error {
		ref, a, err := parseArg(req)
		if err != nil {
			return err
		}
		rc, size, err := m.st.Open(ref)
		if err != nil {
			return errors.New("could not get blob")
		}
		defer rc.Close()
		if a.Size != nil && *a.Size != size {
			return fmt.Errorf("incorrect file length, requested:%d file was:%d", *a.Size, size)
		}
		if a.Max != nil && size > *a.Max {
			return fmt.Errorf("incorrect file length, requested max:%d file was:%d", *a.Max, size)
		}
		var r io.Reader = rc
		if slice {
			if a.Start == nil || a.End == nil || *a.Start < 0 || *a.End < *a.Start {
				return errors.New("getSlice: start and end must be numbers, 0 <= start <= end")
			}
			if _, err := io.CopyN(io.Discard, rc, *a.Start); err != nil && err != io.EOF {
				return err
			}
			r = io.LimitReader(rc, *a.End-*a.Start)
		}
		buf := make([]byte, chunkSize)
		for {
			k, err := io.ReadFull(r, buf)
			if k > 0 {
				if werr := out.WriteRaw(muxrpc.FlagBinary, buf[:k]); werr != nil {
					return nil
				}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
	getM := service.Source("blobs.get", service.Anyone, func(ctx context.Context, req *muxrpc.Request, out *muxrpc.Sink) error {
		return get(ctx, req, out, false)
	})
	getSlice := service.Source("blobs.getSlice", service.Anyone, func(ctx context.Context, req *muxrpc.Request, out *muxrpc.Sink) error {
		return get(ctx, req, out, true)
	})
	has := service.Async("blobs.has", service.Anyone, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		var list []string
		if req.Arg(0, &list) == nil {
			out := make([]bool, len(list))
			for i, s := range list {
				ref, err := feeds.ParseBlobRef(s)
				if err != nil {
					return nil, fmt.Errorf("invalid id:%s", muxrpc.ShortArg(s))
				}
				_, out[i] = m.st.Has(ref)
			}
			return out, nil
		}
		ref, _, err := parseArg(req)
		if err != nil {
			return nil, err
		}
		_, ok := m.st.Has(ref)
		return ok, nil
	})
	size := service.Async("blobs.size", service.Owner, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		ref, _, err := parseArg(req)
		if err != nil {
			return nil, err
		}
		if size, ok := m.st.Has(ref); ok {
			return size, nil
		}
		return nil, nil
	})
	want := service.Async("blobs.want", service.Owner, func(ctx context.Context, req *muxrpc.Request) (any, error) {
		ref, _, err := parseArg(req)
		if err != nil {
			return nil, err
		}
		return m.Want(ctx, ref)
	})
	add := service.Sink("blobs.add", service.Owner, func(ctx context.Context, req *muxrpc.Request, in *muxrpc.Source) error {
		var want *feeds.BlobRef
		var s string
		if req.Arg(0, &s) == nil && s != "" {
			ref, err := feeds.ParseBlobRef(s)
			if err != nil {
				return fmt.Errorf("invalid id:%s", muxrpc.ShortArg(s))
			}
			want = &ref
		}
		_, _, err := m.st.Add(sourceReader(ctx, in), want)
		// Stop reading what the client still sends; the handler's error
		// (too large, mismatch) goes out as the stream's end.
		_ = in.Close()
		return err
	})
	return service.Service{
		Name:      "blobs",
		Methods:   []service.Method{wants, getM, getSlice, has, size, want, add},
		OnConnect: func(ctx context.Context, p service.Peer) { m.Connected(ctx, p.Endpoint()) },
	}
}

// sourceReader reads the bytes of a stream's items in order. It reads in
// the caller's goroutine, so nothing is left running when the caller
// stops reading. A clean end of the stream is io.EOF.
func sourceReader(ctx context.Context, in *muxrpc.Source) io.Reader {
	return &srcReader{ctx: ctx, in: in}
}

type srcReader struct {
	ctx  context.Context
	in   *muxrpc.Source
	rest []byte
	err  error
}

func (r *srcReader) Read(p []byte) (int, error) {
	for len(r.rest) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		body, err := r.in.Next(r.ctx)
		if err != nil {
			r.err = err
			if !errors.Is(err, io.EOF) {
				r.err = fmt.Errorf("blobs: read stream: %w", err)
			}
			return 0, r.err
		}
		r.rest = body
	}
	n := copy(p, r.rest)
	r.rest = r.rest[n:]
	return n, nil
}
