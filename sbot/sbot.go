package sbot

import (
	"cmp"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cask-ssb/cask/feeds"
	blobstore "github.com/cask-ssb/cask/feeds/blobs"
	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/feeds/feedlog"
	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/indexes/contacts"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/about"
	blobsplugin "github.com/cask-ssb/cask/plugins/blobs"
	"github.com/cask-ssb/cask/plugins/ebt"
	"github.com/cask-ssb/cask/plugins/feedstream"
	"github.com/cask-ssb/cask/plugins/friends"
	"github.com/cask-ssb/cask/plugins/gossip"
	"github.com/cask-ssb/cask/plugins/history"
	"github.com/cask-ssb/cask/plugins/links"
	"github.com/cask-ssb/cask/plugins/logstream"
	"github.com/cask-ssb/cask/plugins/private"
	"github.com/cask-ssb/cask/plugins/publish"
	"github.com/cask-ssb/cask/plugins/query"
	"github.com/cask-ssb/cask/plugins/replicate"
	"github.com/cask-ssb/cask/plugins/service"
	"github.com/cask-ssb/cask/plugins/status"
	threadsplugin "github.com/cask-ssb/cask/plugins/threads"
	"github.com/cask-ssb/cask/plugins/types"
	"github.com/cask-ssb/cask/plugins/whoami"
	"github.com/cockroachdb/pebble/v2/vfs"
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
	// Limits bound what one peer connection may cost (zero: defaults).
	Limits PeerLimits
	// Sched tunes the connection scheduler (zero: defaults).
	Sched SchedOptions
	// Network carries the net: transport (nil: the OS's TCP).
	Network Network
	// StoreFS is the filesystem of the store's database (nil: the OS's,
	// in REPO/store). Simulations pass a crash-simulating in-memory one.
	StoreFS vfs.FS
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
	ingest [2]*replicate.Ingester // EBT, legacy: one ingest path, counted per kind
	// graph is the follow/block graph, a persisted index of the store.
	graph *contacts.Graph
	// views are the query indexes (by type, links, about, threads, private).
	views *Views
	blobs *blobsplugin.Manager
	// services are the plugins the node runs: their methods and hooks.
	services []service.Service
	// conns owns every connection; listeners and dialers are its
	// transports, one file per transport and direction.
	conns *connManager
	rooms *roomClient
	// addrs is the address book (REPO/peers.json); sched dials from it.
	addrs     *addrBook
	sched     *scheduler
	listeners []*listener
	dialers   map[string]dialer
	ready     chan struct{}
	limits    PeerLimits
	network   Network
	// progress logs replication progress while messages arrive.
	progress *syncProgress
	started  time.Time
	// metrics are the Prometheus series (nil unless --debug-listen).
	metrics *metrics

	mu        sync.Mutex
	listen    []string
	debugAddr string
	closed    bool
}

// New opens the repo and prepares the node; Serve starts the network.
func New(opts Options) (*Node, error) {
	cfg := opts.Config
	if cfg.Repo == "" {
		return nil, errors.New("sbot: no repo directory")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sbot: invalid settings: %w", err)
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
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Repo, 0o700); err != nil {
		return nil, fmt.Errorf("create repo %s: %w", cfg.Repo, err)
	}
	// The store's lock (flock on store/LOCK, with the holder's pid) is the
	// repo lock: it is taken first, so a second daemon stops here.
	// The identity is read first: the private index opens box1 messages
	// with it while the store rebuilds indexes at open.
	var keys feeds.KeyPair
	if cfg.Key != "" {
		keys, err = feeds.ReadSecret(cfg.Key)
		if err != nil {
			return nil, fmt.Errorf("read key %s: %w", cfg.Key, err)
		}
	} else {
		var created bool
		keys, created, err = feeds.LoadOrCreateSecret(cfg.KeyPath())
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", cfg.KeyPath(), err)
		}
		if created {
			log.Info("created a new identity", "id", keys.ID.String(), "secret", cfg.KeyPath())
		}
	}
	graph := contacts.New()
	views := NewViews(&keys)
	so := StoreOptions(log.With("component", "store"), graph, views.Indexers()...)
	so.FS = opts.StoreFS
	st, err := store.Open(filepath.Join(cfg.Repo, "store"), so)
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return nil, fmt.Errorf("open repo %s: %w: %w", cfg.Repo, ErrRepoLocked, err)
		}
		return nil, fmt.Errorf("open store: %w%s", err, fsckHint(err))
	}
	n := &Node{cfg: cfg, log: log, now: now, caps: caps, keys: keys, store: st, graph: graph, views: views, ready: make(chan struct{})}
	n.limits = opts.Limits
	n.network = cmp.Or[Network](opts.Network, tcpNetwork{})
	n.limits.budget = muxrpc.NewBudget(cmp.Or(n.limits.BodyBudget, DefaultBodyBudget))
	fail := func(err error) (*Node, error) {
		if n.writer != nil {
			n.writer.Close()
		}
		st.Close()
		return nil, err
	}
	n.progress = newSyncProgress(n.keys.ID)
	n.progress.sync = func() status.Sync { s, _ := n.syncProgress(); return s }
	if debugEnabled(cfg.DebugListen) {
		n.metrics = newMetrics(n)
	}
	// Every committed message reaches the services' OnAppend hooks (the
	// services are listed below; nothing is written before New returns).
	afterCommit := func(msgs []*classic.Message) {
		for _, m := range msgs {
			n.progress.add(m.Author)
			for _, s := range n.services {
				if s.OnAppend != nil {
					s.OnAppend(m)
				}
			}
		}
	}
	var observer feedlog.Observer
	if n.metrics != nil {
		observer = n.metrics
	}
	n.writer, err = feedlog.New(feedlog.Options{Store: n.store, Keys: &n.keys, Now: now, Logger: log.With("component", "feedlog"), AfterCommit: afterCommit, Observer: observer})
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
	n.addrs = newAddrBook(cfg.Repo, n.keys.ID)
	n.sched = newScheduler(n, opts.Sched)
	// One ingest path; one Ingester per replication kind, so metrics and
	// counts tell them apart.
	kept := func(peer feeds.FeedRef, _ int) { n.sched.received(peer) }
	ing := &replicate.Ingester{W: n.writer, Policy: ebtPolicy{n}, Forks: forkRecorder{n}, Log: log.With("component", "ingest"),
		Kept: kept, Observe: n.metrics.ingested(kindEBT)}
	legacyIng := &replicate.Ingester{W: n.writer, Policy: ebtPolicy{n}, Forks: forkRecorder{n}, Log: log.With("component", "ingest"),
		Kept: kept, Observe: n.metrics.ingested(kindLegacy)}
	n.legacy = &replicate.Legacy{Store: n.store, Ingester: legacyIng}
	n.ingest = [2]*replicate.Ingester{ing, legacyIng}
	n.ebt = ebt.New(n.store, blockFilter{n, ing}, ebtPolicy{n}, log.With("component", "ebt"))
	n.ebt.Drop = n.drop
	n.ebt.Sent = n.metrics.sentBy(kindEBT)
	n.ebt.Clocks = n.store // peers' clocks between sessions (request skipping)
	// Validated by Config.Validate.
	n.ebt.StallTimeout, _ = cfg.StallTimeout()
	if n.conns, err = newConnManager(n); err != nil {
		return fail(err)
	}
	n.listeners = n.transports()
	n.dialers = map[string]dialer{"": n.dialTCP, feeds.TransportNet: n.dialTCP, feeds.TransportTunnel: n.dialTunnel, feeds.TransportWS: n.dialWS, feeds.TransportWSS: n.dialWS}
	n.dialers = n.metrics.countDials(n.dialers)
	n.rooms = newRoomClient(n)
	invites, err := n.inviteService()
	if err != nil {
		return fail(err)
	}

	n.services = []service.Service{
		whoami.Service(n.keys.ID),
		gossip.PingService(gossip.Options{Now: n.now}),
		gossip.Service(n.conns),
		history.ServiceWith(n.store, history.Hooks{SentToPeer: n.metrics.sentBy(kindLegacy)}),
		logstream.Service(n.store),
		publish.Service(n.writer),
		status.Service(n),
		status.SyncService(n),
		n.ebt.Service(n.peerOf),
		friends.Service(n.graph, n.keys.ID, n.cfg.Hops),
		friends.GraphService(n.graph, n.keys.ID, n.cfg.Hops),
		types.Service(n.store),
		links.Service(n.store),
		query.Service(n.store),
		about.Service(n.store, n.keys.ID),
		private.Service(n.store, n.writer, &n.keys),
		feedstream.Service(n.store),
		threadsplugin.Service(n.store),
		n.blobs.Service(),
		n.contactsService(),
		n.replicationService(),
		n.rooms.service(),
		n.rooms.httpAuthService(),
		n.sched.service(),
		invites,
		n.pubsService(),
	}
	n.mux = muxrpc.NewMux()
	isOwner := func(req *muxrpc.Request) bool { return n.isOwner(req.RemoteKey()) }
	if err := service.Mount(n.mux, isOwner, n.services...); err != nil {
		return fail(err)
	}
	return n, nil
}

// ID is the node's feed id.
func (n *Node) ID() feeds.FeedRef { return n.keys.ID }

// Store gives tests and tools read access to the store.
func (n *Node) Store() *store.Store { return n.store }

// Ready is closed once Serve listens on every transport: the socket and
// the TCP address accept connections from then on.
func (n *Node) Ready() <-chan struct{} { return n.ready }

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
	n.mu.Unlock()
	var byPeer []status.PeerSync
	r.Sync, byPeer = n.syncProgress()
	peerSync := make(map[string]*status.PeerSync, len(byPeer))
	for i := range byPeer {
		peerSync[byPeer[i].ID] = &byPeer[i]
	}
	for _, c := range n.conns.connected() {
		p := status.Peer{ID: c.id.String(), Address: c.address, Transport: c.transport, Direction: c.direction, Since: c.since.UnixMilli()}
		if ps := peerSync[p.ID]; ps != nil && ps.Clock {
			p.Sync = ps
		}
		if c.transport == feeds.TransportTunnel {
			if a, err := feeds.ParseAddress(c.address); err == nil {
				p.Room = a.Portal.String()
			}
		}
		r.Peers = append(r.Peers, p)
	}
	r.Rooms = n.rooms.report()
	return r
}

// StoreOptions are the options a repo's store is opened with: the daemon,
// offline import and bench/fill all open it with the same indexers, so no
// writer can leave an index behind the log.
func StoreOptions(log *slog.Logger, graph *contacts.Graph, views ...store.Indexer) store.Options {
	return store.Options{
		Logger:    log,
		CacheSize: 8 << 20,
		// 16 MiB memtables: with 4 MiB ones, replicating 100,000 messages
		// flushed 24 times and compacted 14 (write amplification 3.4);
		// with 16 MiB, 5 and 3 (2.3), and the store's CPU per appended
		// message fell by a third (feeds/store BenchmarkAppendMemTable).
		// Pebble grows a memtable's pages as it fills, so an idle daemon
		// does not pay for the size.
		MemTableSize: 16 << 20,
		Indexers:     append([]store.Indexer{graph}, views...),
		// Message ids hash the author and sequence: the feed writer's
		// chain check already rules out a repeated id.
		KeysCoverSequence: true,
	}
}
