package sbot

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cask-ssb/cask/feeds"
	blobstore "github.com/cask-ssb/cask/feeds/blobs"
	"github.com/cask-ssb/cask/feeds/feedlog"
	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/indexes/contacts"
	"github.com/cask-ssb/cask/muxrpc"
	blobsplugin "github.com/cask-ssb/cask/plugins/blobs"
	"github.com/cask-ssb/cask/plugins/ebt"
	"github.com/cask-ssb/cask/plugins/friends"
	"github.com/cask-ssb/cask/plugins/gossip"
	"github.com/cask-ssb/cask/plugins/history"
	"github.com/cask-ssb/cask/plugins/logstream"
	"github.com/cask-ssb/cask/plugins/publish"
	"github.com/cask-ssb/cask/plugins/replicate"
	"github.com/cask-ssb/cask/plugins/status"
	"github.com/cask-ssb/cask/plugins/whoami"
)

// ErrRepoLocked is returned when another daemon (or an offline import)
// holds the repo.
var ErrRepoLocked = errors.New("repo is in use by another sbot")

// Version is reported by status.
const Version = "0.1.0"

// Options configure a Node.
type Options struct {
	Config Config
	Logger *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Node is a running SSB daemon.
type Node struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	keys  feeds.KeyPair
	caps  [32]byte
	store *store.Store
	mux   *muxrpc.Mux
	// writer is the one feed writer: publish, add, replication, import.
	writer *feedlog.Log
	ebt    *ebt.Replicator
	legacy *replicate.Legacy
	// graph is the follow/block graph, a persisted index of the store.
	graph   *contacts.Graph
	blobs   *blobsplugin.Manager
	started time.Time

	mu        sync.Mutex
	serveCtx  context.Context // set by Serve: lifetime of outgoing connections
	peers     map[*muxrpc.Endpoint]*peerInfo
	listeners []net.Listener
	listen    []string
	wg        sync.WaitGroup
	closed    bool
}

type peerInfo struct {
	id        feeds.FeedRef
	address   string
	direction string
	since     time.Time
}

// New opens the repo and prepares the node; Serve starts the network.
func New(opts Options) (*Node, error) {
	cfg := opts.Config
	if cfg.Repo == "" {
		return nil, errors.New("sbot: no repo directory")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	caps, err := cfg.CapsKey()
	if err != nil {
		return nil, err
	}
	for _, p := range cfg.Peers {
		if _, err := feeds.ParseAddress(p); err != nil {
			return nil, fmt.Errorf("peers: %w", err)
		}
	}
	if err := os.MkdirAll(cfg.Repo, 0o700); err != nil {
		return nil, fmt.Errorf("create repo %s: %w", cfg.Repo, err)
	}
	// The store's lock (flock on store/LOCK, with the holder's pid) is the
	// repo lock: it is taken first, so a second daemon stops here.
	graph := contacts.New()
	st, err := store.Open(filepath.Join(cfg.Repo, "store"), StoreOptions(log.With("component", "store"), graph))
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return nil, fmt.Errorf("open repo %s: %w: %w", cfg.Repo, ErrRepoLocked, err)
		}
		return nil, fmt.Errorf("open store: %w", err)
	}
	n := &Node{cfg: cfg, log: log, now: now, caps: caps, store: st, graph: graph, peers: map[*muxrpc.Endpoint]*peerInfo{}}
	fail := func(err error) (*Node, error) {
		if n.writer != nil {
			n.writer.Close()
		}
		st.Close()
		return nil, err
	}
	if cfg.Key != "" {
		n.keys, err = feeds.ReadSecret(cfg.Key)
		if err != nil {
			return fail(fmt.Errorf("read key %s: %w", cfg.Key, err))
		}
	} else {
		var created bool
		n.keys, created, err = feeds.LoadOrCreateSecret(cfg.KeyPath())
		if err != nil {
			return fail(fmt.Errorf("secret %s: %w", cfg.KeyPath(), err))
		}
		if created {
			log.Info("created a new identity", "id", n.keys.ID.String(), "secret", cfg.KeyPath())
		}
	}
	n.writer, err = feedlog.New(feedlog.Options{Store: n.store, Keys: &n.keys, Now: now, Logger: log.With("component", "feedlog")})
	if err != nil {
		return fail(err)
	}
	graph.OnChange(func(author feeds.FeedRef) {
		if author == n.keys.ID {
			go n.ebt.Refresh() // our follows changed: ask running sessions for new feeds
		}
	})
	bs, err := blobstore.Open(filepath.Join(cfg.Repo, "blobs"), 0)
	if err != nil {
		return fail(err)
	}
	n.blobs = blobsplugin.New(bs, log.With("component", "blobs"))
	ing := &replicate.Ingester{W: n.writer, Policy: ebtPolicy{n}, Forks: forkRecorder{n}, Log: log.With("component", "ingest")}
	n.legacy = &replicate.Legacy{Store: n.store, Ingester: ing}
	n.ebt = ebt.New(n.store, ing, ebtPolicy{n}, log.With("component", "ebt"))
	n.ebt.Drop = n.drop
	n.mux = n.buildMux()
	return n, nil
}

// ID is the node's feed id.
func (n *Node) ID() feeds.FeedRef { return n.keys.ID }

// Store gives tests and tools read access to the store.
func (n *Node) Store() *store.Store { return n.store }

// anonymous lists what a peer that is not the owner may call: the read
// methods the JS stack lets anonymous peers call (ssb-server refuses even
// whoami to them: checked against the interop kit's peer).
var anonymous = map[string]bool{
	"manifest":            true,
	"gossip.ping":         true,
	"ebt.replicate":       true,
	"ebt.clock":           true,
	"blobs.get":           true,
	"blobs.getSlice":      true,
	"blobs.has":           true,
	"blobs.createWants":   true,
	"createHistoryStream": true,
}

func (n *Node) buildMux() *muxrpc.Mux {
	m := muxrpc.NewMux()
	whoami.Register(m, n.keys.ID)
	gossip.Register(m, gossip.Options{Now: n.now})
	gossip.RegisterConnect(m, n)
	history.Register(m, n.store)
	logstream.Register(m, n.store)
	publish.Register(m, n.writer)
	status.Register(m, n)
	n.ebt.Register(m, n.peerOf)
	friends.Register(m, n.graph, n.keys.ID, n.cfg.Hops)
	n.blobs.Register(m)
	m.Allow = func(ctx context.Context, req *muxrpc.Request) bool {
		if n.isOwner(req.RemoteKey()) {
			return true
		}
		return anonymous[req.Method.String()]
	}
	return m
}

// isOwner: the unix socket (no remote key) or our own key over TCP.
func (n *Node) isOwner(rk ed25519.PublicKey) bool {
	if rk == nil {
		return true
	}
	return feeds.FeedRef(n.keys.ID) == refOf(rk)
}

func refOf(pk ed25519.PublicKey) feeds.FeedRef {
	var r feeds.FeedRef
	copy(r[:], pk)
	return r
}

// Status implements status.Source.
func (n *Node) Status() status.Report {
	msgs, nfeeds := n.store.Count()
	r := status.Report{
		ID:       n.keys.ID.String(),
		Messages: msgs,
		Feeds:    nfeeds,
		LastSeq:  n.store.LastSeq(),
		Uptime:   n.now().Sub(n.started).Seconds(),
		Version:  Version,
		Peers:    []status.Peer{},
	}
	for f, err := range n.store.Forks() {
		if err != nil {
			break
		}
		r.Forks = append(r.Forks, status.Fork{Author: f.Author.String(), Sequence: f.Sequence, Peer: f.Peer.String(), Reason: f.Reason})
	}
	n.mu.Lock()
	r.Listen = append([]string{}, n.listen...)
	for _, p := range n.peers {
		if p.direction == "unix" {
			continue
		}
		r.Peers = append(r.Peers, status.Peer{ID: p.id.String(), Address: p.address, Direction: p.direction, Since: p.since.UnixMilli()})
	}
	n.mu.Unlock()
	return r
}

// StoreOptions are the options a repo's store is opened with: the daemon,
// offline import and bench/fill all open it with the same indexers, so no
// writer can leave an index behind the log.
func StoreOptions(log *slog.Logger, graph *contacts.Graph) store.Options {
	return store.Options{
		Logger:       log,
		CacheSize:    8 << 20,
		MemTableSize: 4 << 20,
		Indexers:     []store.Indexer{graph},
		// Message ids hash the author and sequence: the feed writer's
		// chain check already rules out a repeated id.
		KeysCoverSequence: true,
	}
}
