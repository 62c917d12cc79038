package sbot

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/internal/roomweb"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/gossip"
)

// Keepers: the peers the node keeps connected (--peers and connect
// --remember), each with a loop that redials it with back-off, and the
// owner's connect, disconnect and peers calls (gossip.Connector).

// target is a peer the node keeps connected: --peers or connect --remember.
type target struct {
	addr   feeds.Address
	source string // "config" or "remembered"
	state  string // "connected", "dialling", "backoff", "paused", "idle"
	// paused: the owner disconnected it; not redialled until a connect to
	// it (or a restart).
	paused   bool
	wake     chan struct{} // a connect resumes a paused or backing-off keeper
	failures int
	next     time.Time
	lastErr  string
	cancel   context.CancelFunc
}

// keep starts (once per peer) a loop that keeps a connected: dial, wait
// for the connection to end, back off (1 s doubling to 1 min, reset after
// a connection that lasted a minute), dial again.
func (m *connManager) keep(a feeds.Address, source string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.life == nil {
		return
	}
	if t := m.targets[a.Key]; t != nil {
		if source == "remembered" && t.source == "remembered" {
			t.addr = a
		}
		m.resumeLocked(t)
		return
	}
	ctx, cancel := context.WithCancel(m.life)
	t := &target{addr: a, source: source, state: "idle", cancel: cancel, wake: make(chan struct{}, 1)}
	m.targets[a.Key] = t
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.keepLoop(ctx, t)
	}()
}

// resumeLocked ends a pause (or a back-off) of t: the owner asked to
// connect.
func (m *connManager) resumeLocked(t *target) {
	t.paused = false
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (m *connManager) setTarget(t *target, f func(t *target)) {
	m.mu.Lock()
	f(t)
	m.mu.Unlock()
}

func (m *connManager) keepLoop(ctx context.Context, t *target) {
	const minWait, maxWait = time.Second, time.Minute
	wait := minWait
	for ctx.Err() == nil {
		m.mu.Lock()
		a, paused := t.addr, t.paused
		if paused {
			t.state = "paused"
		}
		m.mu.Unlock()
		if paused {
			select {
			case <-ctx.Done():
				return
			case <-t.wake:
				wait = minWait
				continue
			}
		}
		c := m.peer(a.Key)
		if c == nil {
			m.setTarget(t, func(t *target) { t.state = "dialling" })
			var err error
			c, err = m.dial(ctx, a)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				m.setTarget(t, func(t *target) { t.failures++; t.lastErr = err.Error() })
				c = nil
			}
		}
		if c != nil {
			m.mu.Lock()
			paused := t.paused
			m.mu.Unlock()
			if paused {
				m.dropPeer(c.id, "disconnected by the owner")
				continue
			}
			m.setTarget(t, func(t *target) { t.state = "connected"; t.failures = 0 })
			select {
			case <-c.e.Done():
			case <-ctx.Done():
				return
			}
			why := "connection ended"
			if r := c.reason.Load(); r != nil {
				why = *r
			} else if err := c.e.Err(); err != nil {
				why = err.Error()
			}
			m.setTarget(t, func(t *target) { t.lastErr = why })
			if m.n.now().Sub(c.since) > maxWait {
				wait = minWait
			}
			if m.peer(a.Key) != nil {
				continue // the peer dialled again (or we did): watch that one
			}
		}
		m.setTarget(t, func(t *target) { t.state = "backoff"; t.next = m.n.now().Add(wait) })
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-t.wake:
			timer.Stop()
			wait = minWait
			continue
		case <-timer.C:
		}
		wait = min(wait*2, maxWait)
	}
}

// ConnectAddress implements gossip.Connector.
func (m *connManager) ConnectAddress(ctx context.Context, address string, remember bool) error {
	if roomweb.IsAliasLink(address) {
		return m.n.connectAlias(ctx, address, remember) // alias_connect.go
	}
	a, err := feeds.ParseAddress(address)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if a.Key == m.n.keys.ID {
		return errors.New("connect: that is our own address")
	}
	m.n.addrs.setPaused(a.Key, false)
	if remember {
		if err := m.rememberPeer(a); err != nil {
			return err
		}
		m.keep(a, "remembered")
	} else {
		m.mu.Lock()
		if t := m.targets[a.Key]; t != nil {
			m.resumeLocked(t)
		}
		m.mu.Unlock()
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := m.dial(dctx, a)
	if err != nil {
		return err
	}
	// A full peer completes the handshake, then answers every call with
	// "server full": ask for its manifest so the owner hears it now.
	var manifest map[string]any
	if err := c.e.Async(dctx, &manifest, muxrpc.Method{"manifest"}); IsFull(err) {
		m.dropPeer(c.id, "peer is full: "+err.Error())
		return fmt.Errorf("connect %s: %w", a, err)
	}
	return nil
}

// Disconnect implements gossip.Connector.
func (m *connManager) Disconnect(ctx context.Context, target string, forget bool) (bool, error) {
	var id feeds.FeedRef
	var err error
	if strings.HasPrefix(target, "@") {
		id, err = feeds.ParseFeedRef(target)
	} else {
		var a feeds.Address
		a, err = feeds.ParseAddress(target)
		id = a.Key
	}
	if err != nil {
		return false, fmt.Errorf("disconnect: want a feed id or a peer address: %w", err)
	}
	m.mu.Lock()
	if t := m.targets[id]; t != nil {
		if forget && t.source == "remembered" {
			t.cancel()
			delete(m.targets, id)
		} else {
			t.paused = true // until the owner connects to it again
		}
	}
	m.mu.Unlock()
	if forget {
		if err := m.forgetPeer(id); err != nil {
			return false, err
		}
	} else {
		m.n.addrs.setPaused(id, true) // the scheduler leaves it alone too
	}
	return m.dropPeer(id, "disconnected by the owner"), nil
}

// Peers implements gossip.Connector.
func (m *connManager) Peers() gossip.Report {
	now := m.n.now()
	var r gossip.Report
	for _, c := range m.connected() {
		r.Connected = append(r.Connected, gossip.Connected{
			ID: c.id.String(), Address: c.address, Transport: c.transport, Direction: c.direction,
			Class: c.class.String(), Since: c.since.UnixMilli(), IdleMs: c.idle(now).Milliseconds(),
		})
	}
	m.mu.Lock()
	for _, t := range m.targets {
		cf := gossip.Configured{Address: t.addr.String(), ID: t.addr.Key.String(), Source: t.source,
			State: t.state, Failures: t.failures, LastError: t.lastErr}
		if t.state == "backoff" {
			cf.NextDial = t.next.UnixMilli()
		}
		r.Configured = append(r.Configured, cf)
	}
	m.mu.Unlock()
	sort.Slice(r.Configured, func(i, j int) bool { return r.Configured[i].Address < r.Configured[j].Address })
	r.Known = m.n.sched.report(now)
	return r
}
