// Package blobs serves ssb-blobs: blobs.get, blobs.getSlice, blobs.has and
// blobs.createWants for every peer, and blobs.add, blobs.size and
// blobs.want for the owner. It runs the want/have exchange: each side of
// a connection calls createWants on the other; wants (negative hop counts)
// and haves (sizes) flow on those streams, and a wanted blob is fetched
// with blobs.get from a peer that has it, checked against its id and
// stored. Wants of peers are forwarded up to 3 hops (sympathy).
//
// Wants are bounded and expire: at most MaxWants in all and MaxPeerWants
// forwarded for one peer; a forwarded want, or one of ours nobody waits
// for any more, is forgotten after WantTTL; at most MaxWaiters blobs.want
// calls wait at once. Announcing a blob (or a want) to a peer never waits
// for that peer: what is to be said is queued per peer, bounded, and
// written by the peer's createWants stream.
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
	"time"

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

// Bounds of the want/have state.
const (
	// MaxWants is how many blob wants (ours and forwarded) are held.
	MaxWants = 10000
	// MaxPeerWants is how many wants of one peer are held and forwarded.
	MaxPeerWants = 500
	// MaxWaiters is how many blobs.want calls may wait at once.
	MaxWaiters = 1000
	// WantTTL is how long a forwarded want, or one of ours that nobody
	// waits for any more, is kept.
	WantTTL = 10 * time.Minute
	// maxPeerHaves is how many haves of one peer are remembered.
	maxPeerHaves = 10000
	// sweepEvery is how often expired wants are looked for (lazily).
	sweepEvery = 10 * time.Second
)

// ErrTooManyWaiters is the error of Want when MaxWaiters calls wait.
var ErrTooManyWaiters = errors.New("blobs: too many blob wants waiting")

// Manager runs the want/have exchange for all connections.
type Manager struct {
	st  Store
	log *slog.Logger
	// Now is the clock (tests); time.Now by default.
	Now func() time.Time

	mu        sync.Mutex
	wants     map[feeds.BlobRef]*want
	waiters   map[feeds.BlobRef]map[chan struct{}]struct{}
	nWaiters  int
	peers     map[*muxrpc.Endpoint]*peer
	fetching  map[feeds.BlobRef]bool
	lastSweep time.Time
}

// want is one blob we look for.
type want struct {
	hops int   // negative: -1 = we want it ourselves
	from *peer // the peer we forward it for; nil for our own
	// expires: when it is forgotten; zero while a blobs.want call waits.
	expires time.Time
}

type peer struct {
	e     *muxrpc.Endpoint
	haves map[feeds.BlobRef]int64
	ctx   context.Context
	// wants counts the wants held for this peer.
	wants int
	// pending: wants and haves to tell the peer, written by its
	// createWants stream (serveWants); kick wakes it.
	pending map[string]int64
	kick    chan struct{}
}

func newPeer(ctx context.Context, e *muxrpc.Endpoint) *peer {
	return &peer{e: e, haves: map[feeds.BlobRef]int64{}, ctx: ctx, kick: make(chan struct{}, 1)}
}

// New returns a Manager over st.
func New(st Store, log *slog.Logger) *Manager {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{st: st, log: log, Now: time.Now, wants: map[feeds.BlobRef]*want{}, waiters: map[feeds.BlobRef]map[chan struct{}]struct{}{},
		peers: map[*muxrpc.Endpoint]*peer{}, fetching: map[feeds.BlobRef]bool{}}
	st.OnAdd(m.added)
	return m
}

// added: a blob arrived; tell every peer we have it and wake waiters.
func (m *Manager) added(ref feeds.BlobRef, size int64) {
	m.mu.Lock()
	_, wanted := m.wants[ref]
	m.dropWantLocked(ref)
	ws := m.waiters[ref]
	delete(m.waiters, ref)
	m.nWaiters -= len(ws)
	m.mu.Unlock()
	for w := range ws {
		close(w)
	}
	if wanted {
		m.announce(map[string]int64{ref.String(): size}, nil)
	}
}

func (m *Manager) dropWantLocked(ref feeds.BlobRef) {
	if w, ok := m.wants[ref]; ok {
		if w.from != nil {
			w.from.wants--
		}
		delete(m.wants, ref)
	}
}

// sweepLocked forgets expired wants, at most every sweepEvery.
func (m *Manager) sweepLocked(now time.Time) {
	if now.Sub(m.lastSweep) < sweepEvery {
		return
	}
	m.lastSweep = now
	for ref, w := range m.wants {
		if !w.expires.IsZero() && now.After(w.expires) {
			m.dropWantLocked(ref)
		}
	}
}

// announce queues a wants/haves map for every peer (except skip); each
// peer's createWants stream writes it. It never waits for a peer.
func (m *Manager) announce(msg map[string]int64, skip *peer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.peers {
		if p != skip {
			m.queueLocked(p, msg)
		}
	}
}

// queueLocked adds msg to what p is to be told, within MaxWants entries
// (more are dropped: the peer asks again).
func (m *Manager) queueLocked(p *peer, msg map[string]int64) {
	if p.pending == nil {
		p.pending = map[string]int64{}
	}
	for k, v := range msg {
		if _, ok := p.pending[k]; !ok && len(p.pending) >= MaxWants {
			m.log.Debug("blobs: too much queued for a peer; dropped", "blob", k)
			continue
		}
		p.pending[k] = v
	}
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (m *Manager) peerFor(ctx context.Context, e *muxrpc.Endpoint) *peer {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.peers[e]
	if p == nil {
		p = newPeer(ctx, e)
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
	m.mu.Lock()
	m.sweepLocked(m.Now())
	m.mu.Unlock()
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
			now := m.Now()
			m.sweepLocked(now)
			cur, wanted := m.wants[ref]
			switch {
			case !wanted && (p.wants >= MaxPeerWants || len(m.wants) >= MaxWants):
				// Over the bounds: not held, not forwarded.
			case !wanted:
				m.wants[ref] = &want{hops: hops, from: p, expires: now.Add(WantTTL)}
				p.wants++
				forward[k] = int64(hops)
			case cur.hops < hops && cur.from != nil:
				cur.hops = hops
				cur.expires = now.Add(WantTTL)
				forward[k] = int64(hops)
			}
			m.mu.Unlock()
			continue
		}
		m.mu.Lock()
		if _, ok := p.haves[ref]; ok || len(p.haves) < maxPeerHaves {
			p.haves[ref] = v
		}
		_, wanted := m.wants[ref]
		m.mu.Unlock()
		if wanted && v < m.st.MaxSize() {
			m.fetch(ref)
		}
	}
	if len(reply) > 0 {
		m.mu.Lock()
		m.queueLocked(p, reply)
		m.mu.Unlock()
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
	if m.nWaiters >= MaxWaiters {
		m.mu.Unlock()
		return false, fmt.Errorf("%w (%d)", ErrTooManyWaiters, MaxWaiters)
	}
	m.sweepLocked(m.Now())
	if m.waiters[ref] == nil {
		m.waiters[ref] = map[chan struct{}]struct{}{}
	}
	m.waiters[ref][ch] = struct{}{}
	m.nWaiters++
	cur, wanted := m.wants[ref]
	announce := !wanted || cur.hops < -1
	if wanted && cur.from != nil {
		cur.from.wants--
	}
	// Ours now (never dropped for the bounds: MaxWaiters bounds these),
	// kept while someone waits.
	m.wants[ref] = &want{hops: -1}
	m.mu.Unlock()
	if announce {
		m.announce(map[string]int64{ref.String(): -1}, nil)
	}
	m.fetch(ref)
	if _, ok := m.st.Has(ref); ok { // arrived meanwhile
		m.stopWaiting(ref, ch)
		return true, nil
	}
	select {
	case <-ch:
		return true, nil
	case <-ctx.Done():
		m.stopWaiting(ref, ch)
		return false, ctx.Err()
	}
}

// stopWaiting removes a waiter; the want of a blob nobody waits for any
// more expires after WantTTL.
func (m *Manager) stopWaiting(ref feeds.BlobRef, ch chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ws, ok := m.waiters[ref]
	if !ok {
		return // the blob arrived: added woke everyone
	}
	if _, ok := ws[ch]; !ok {
		return
	}
	delete(ws, ch)
	m.nWaiters--
	if len(ws) > 0 {
		return
	}
	delete(m.waiters, ref)
	if w, ok := m.wants[ref]; ok && w.from == nil {
		w.expires = m.Now().Add(WantTTL)
	}
}

// serveWants is the createWants stream we serve to a peer: a snapshot of
// our wants, then whatever is queued for the peer (announcements, answers
// to its wants), until the peer or ctx ends it. It is the only writer of
// the stream, so nobody else waits for a slow peer.
func (m *Manager) serveWants(ctx context.Context, req *muxrpc.Request, out *muxrpc.Sink) error {
	p := m.peerFor(ctx, req.Endpoint)
	m.mu.Lock()
	m.sweepLocked(m.Now())
	snap := make(map[string]int64, len(m.wants)+len(p.pending))
	for ref, w := range m.wants {
		if w.from != p {
			snap[ref.String()] = int64(w.hops)
		}
	}
	for k, v := range p.pending {
		snap[k] = v
	}
	p.pending = nil
	m.mu.Unlock()
	if err := out.Write(snap); err != nil {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-out.Done():
			return nil
		case <-p.kick:
		}
		m.mu.Lock()
		msg := p.pending
		p.pending = nil
		m.mu.Unlock()
		if len(msg) == 0 {
			continue
		}
		if err := out.Write(msg); err != nil {
			return nil
		}
	}
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
