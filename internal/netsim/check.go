package netsim

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/feeds/store"
)

// missing lists, for each honest node, the feeds within its hops it does
// not hold to the end yet (a node that is down counts as missing all).
func (s *Sim) missing(limit int) (total int, sample []string) {
	for _, n := range s.nodes {
		if n.daemon() == nil {
			sample = append(sample, n.name+" is not running")
		}
	}
	for i, n := range s.nodes {
		sb := n.daemon()
		for f := range s.plan.Expected(i) {
			want := s.nodes[f].seq.Load()
			var have int64
			if sb != nil {
				seq, _, ok, err := sb.Store().Latest(s.ID(f))
				if err == nil && ok {
					have = seq
				}
			}
			if have < want {
				total++
				if len(sample) < limit {
					sample = append(sample, fmt.Sprintf("%s lacks %s %d/%d", n.name, s.plan.Hosts[f], have, want))
				}
			}
		}
	}
	return total, sample
}

// explain says, for the first limit feeds an honest node lacks, which
// peers the node is connected to and how far each of them holds the feed:
// a stall with a peer that holds more is a replication bug, one without
// is a gossip gap.
func (s *Sim) explain(limit int) string {
	byID := map[string]int{}
	for i := range s.plan.Hosts {
		byID[s.ID(i).String()] = i
	}
	var out []string
	for i, n := range s.nodes {
		sb := n.daemon()
		if sb == nil {
			continue
		}
		for f := range s.plan.Expected(i) {
			want := s.nodes[f].seq.Load()
			have, _, _, _ := sb.Store().Latest(s.ID(f))
			if have >= want {
				continue
			}
			var peers []string
			for _, p := range sb.Status().Peers {
				j, ok := byID[p.ID]
				if !ok {
					peers = append(peers, p.ID[:8]+"?")
					continue
				}
				held := "-"
				if s.plan.Hostile(j) {
					held = "hostile"
				} else if psb := s.nodes[j].daemon(); psb != nil {
					seq, _, _, _ := psb.Store().Latest(s.ID(f))
					held = fmt.Sprint(seq)
				}
				peers = append(peers, fmt.Sprintf("%s(%s %s %s)", s.plan.Hosts[j], p.Direction, p.Transport, held))
			}
			out = append(out, fmt.Sprintf("%s lacks %s %d/%d, connected to [%s]", n.name, s.plan.Hosts[f], have, want, strings.Join(peers, " ")))
			if len(out) >= limit {
				return strings.Join(out, "; ")
			}
		}
	}
	return strings.Join(out, "; ")
}

// held is the number of messages the running honest nodes hold.
func (s *Sim) held() int64 {
	var t int64
	for _, n := range s.nodes {
		if sb := n.daemon(); sb != nil {
			m, _ := sb.Store().Count()
			t += m
		}
	}
	return t
}

// awaitConvergence returns once every honest node holds every feed within
// its hops to the end, after quiet (no more publishing or faults). It fails
// at the deadline, or when no honest node gained a message for Stall.
func (s *Sim) awaitConvergence(ctx context.Context, start time.Time, quiet time.Duration) error {
	c := s.plan.Config
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	last, lastAt := s.held(), time.Now()
	lastLog := time.Now()
	for {
		select {
		case <-ctx.Done():
			_, sample := s.missing(10)
			return fmt.Errorf("netsim: no convergence within %v: %s; %s", c.Deadline, strings.Join(sample, "; "), s.explain(5))
		case <-tick.C:
		}
		if err := s.firstErr(); err != nil {
			return err
		}
		h := s.held()
		if h != last {
			last, lastAt = h, time.Now()
		}
		if time.Since(start) < quiet {
			lastAt = time.Now() // nodes may be offline on purpose
			continue
		}
		total, sample := s.missing(10)
		if total == 0 {
			return nil
		}
		if time.Since(lastLog) >= 5*time.Second {
			lastLog = time.Now()
			s.log.Info("netsim: converging", "at", time.Since(start).Round(time.Millisecond), "missing", total, "held", h, "sample", strings.Join(sample[:min(len(sample), 3)], "; "))
			if total <= 5 {
				s.log.Info("netsim: lagging", "feeds", s.explain(5))
			}
		}
		if c.Stall > 0 && time.Since(lastAt) > c.Stall {
			return fmt.Errorf("netsim: stalled: no message stored for %v, %d feeds missing: %s", c.Stall, total, s.explain(10))
		}
	}
}

func (s *Sim) firstErr() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if len(s.errs) > 0 {
		return s.errs[0]
	}
	return nil
}

// Check verifies the final state of every honest node (all running):
//   - it holds every feed within its hops to the end, and no feed but
//     those and the feeds of peers it met (a peer's own feed is always
//     replicated with it); never a feed it blocks;
//   - its store verifies (store.Verify) and every message in it is valid:
//     signature and chain, each message once;
//   - a node that was sent both branches of a hostile feed recorded the
//     fork.
func (s *Sim) Check(ctx context.Context) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if total, sample := s.missing(10); total > 0 {
		bad("%d feeds not complete: %s", total, strings.Join(sample, "; "))
	}
	byID := map[feeds.FeedRef]int{}
	for i := range s.plan.Hosts {
		byID[s.ID(i)] = i
	}
	for i, n := range s.nodes {
		sb := n.daemon()
		if sb == nil {
			bad("%s is not running", n.name)
			continue
		}
		st := sb.Store()
		if err := st.Verify(ctx); err != nil {
			bad("%s: %w", n.name, err)
		}
		exp := s.plan.Expected(i)
		for fl, err := range st.Feeds() {
			if err != nil {
				bad("%s: feeds: %w", n.name, err)
				break
			}
			j, known := byID[fl.Author]
			_, within := exp[j]
			switch {
			case !known:
				bad("%s holds a feed of no node: %s", n.name, fl.Author)
			case containsInt(s.plan.Blocks[i], j):
				bad("%s holds %s, which it blocks", n.name, s.plan.Hosts[j])
			case !within && s.room == nil && !s.nw.Met(n.name, s.plan.Hosts[j]):
				// (With a room, the daemons' own schedulers dial its
				// attendants through tunnels the network cannot see: any
				// two honest nodes may have met.)
				bad("%s holds %s: not within %d hops, never met", n.name, s.plan.Hosts[j], s.plan.Config.Hops)
			}
		}
		if err := verifyMessages(ctx, st); err != nil {
			bad("%s: %w", n.name, err)
		}
	}
	for hi, h := range s.hostile {
		for _, v := range h.forkVictims() {
			sb := s.nodes[v].daemon()
			found := false
			for f, err := range sb.Store().Forks() {
				if err == nil && f.Author == h.keys.ID {
					found = true
				}
			}
			if !found {
				bad("%s was sent both branches of %s's feed and recorded no fork", s.nodes[v].name, s.plan.Hosts[s.plan.Config.Nodes+hi])
			}
		}
	}
	return errors.Join(errs...)
}

// verifyMessages checks every message of st: signature, chain from
// sequence 1, and no message twice.
func verifyMessages(ctx context.Context, st *store.Store) error {
	var raw [][]byte
	for rec, err := range st.Log(ctx, store.LogQuery{}) {
		if err != nil {
			return err
		}
		raw = append(raw, rec.Value)
	}
	v := classic.NewVerifier(nil)
	msgs, errs := v.VerifyRaw(ctx, raw, map[feeds.FeedRef]*classic.FeedState{})
	seen := map[feeds.MessageRef]bool{}
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("stored message %d is invalid: %w", i+1, err)
		}
		if seen[msgs[i].Key] {
			return fmt.Errorf("message %s stored twice", msgs[i].Key)
		}
		seen[msgs[i].Key] = true
	}
	return nil
}

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// fill completes the result with the counters.
func (s *Sim) fill(r *Result) {
	r.Net = s.nw.Stats()
	r.Starts, r.Stops, r.Kills, r.Attacks = s.starts.Load(), s.stops.Load(), s.kills.Load(), s.attacks.Load()
	r.Tunnels = s.tunnels.Load()
	for _, h := range s.hostile {
		h.mu.Lock()
		r.ForgedSent += int64(h.forgedSent)
		h.mu.Unlock()
	}
	r.PeakHeap = s.peakHeap.Load()
	for _, n := range s.nodes {
		r.Published += n.seq.Load()
		r.BytesSent += s.nw.SentBy(n.name)
		is := n.ingestStats()
		r.Legacy += n.legacyStats()
		es := n.ebtSent()
		r.Notes += es.Notes
		r.NoteEntries += es.NoteEntries
		r.EBTMessages += es.Messages
		sb := n.daemon()
		if sb == nil {
			continue
		}
		r.Received += is.Kept + is.Held + is.Refused
		r.Kept += is.Kept
		r.Duplicates += is.Held
		r.Refused += is.Refused
		for rec, err := range sb.Store().Log(context.Background(), store.LogQuery{}) {
			if err != nil {
				break
			}
			if rec.Author != n.keys.ID {
				r.Delivered++
				r.DeliveredB += int64(len(rec.Value))
			}
		}
		for _, err := range sb.Store().Forks() {
			if err == nil {
				r.Forks++
			}
		}
	}
}

// Table renders the result as the report table.
func (r Result) Table(nodes int) string {
	var b strings.Builder
	row := func(k string, v any) { fmt.Fprintf(&b, "| %-38s | %14v |\n", k, v) }
	fmt.Fprintf(&b, "| %-38s | %14s |\n|%s|%s|\n", "netsim", "value", strings.Repeat("-", 40), strings.Repeat("-", 16))
	row("honest nodes", nodes)
	row("converged", r.Converged)
	row("time to converge (s)", fmt.Sprintf("%.2f", r.Converge.Seconds()))
	row("messages published (honest)", r.Published)
	row("messages delivered", r.Delivered)
	row("messages received per delivered", ratio(r.Received, r.Kept))
	row("duplicates received", r.Duplicates)
	row("refused (hostile)", r.Refused)
	row("received by legacy replication", r.Legacy)
	row("EBT messages sent per delivered", ratio(r.EBTMessages, r.Kept))
	row("EBT notes sent / feeds in them", fmt.Sprintf("%d / %d", r.Notes, r.NoteEntries))
	row("EBT note entries per delivered", ratio(r.NoteEntries, r.Kept))
	row("bytes sent (honest nodes)", r.BytesSent)
	row("bytes delivered", r.DeliveredB)
	row("bytes sent per byte delivered", ratio(r.BytesSent, r.DeliveredB))
	row("connections made / dials", fmt.Sprintf("%d / %d", r.Net.Connections, r.Net.Dials))
	row("connections cut by the network", r.Net.Cuts)
	row("starts / clean stops / kills", fmt.Sprintf("%d / %d / %d", r.Starts, r.Stops, r.Kills))
	row("attacks carried out", r.Attacks)
	row("forged messages sent", r.ForgedSent)
	row("connections through the room", r.Tunnels)
	row("forks recorded", r.Forks)
	row("peak Go heap in use (MiB)", fmt.Sprintf("%.1f", float64(r.PeakHeap)/(1<<20)))
	row("peak heap per node (MiB)", fmt.Sprintf("%.2f", float64(r.PeakHeap)/(1<<20)/float64(max(nodes, 1))))
	return b.String()
}

func ratio(a, b int64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.3f", float64(a)/float64(b))
}

// Delivered is, per honest node, a digest of what it holds of the feeds
// within its hops: every (feed, sequence, content). It is the same for
// two runs of one plan (timestamps and signatures, which differ, are left
// out); feeds of peers a node merely met are left out too (which dials
// succeed is not deterministic).
func (s *Sim) Delivered(ctx context.Context) ([]string, error) {
	out := make([]string, len(s.nodes))
	for i, n := range s.nodes {
		sb := n.daemon()
		if sb == nil {
			return nil, fmt.Errorf("%s is not running", n.name)
		}
		var lines []string
		for f := range s.plan.Expected(i) {
			for rec, err := range sb.Store().History(ctx, store.HistoryQuery{Author: s.ID(f), From: 1, Old: true}) {
				if err != nil {
					return nil, err
				}
				m, err := classic.Parse(rec.Value)
				if err != nil {
					return nil, err
				}
				lines = append(lines, fmt.Sprintf("%s %d %s", s.plan.Hosts[f], m.Sequence, m.ContentJSON()))
			}
		}
		sort.Strings(lines)
		sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
		out[i] = fmt.Sprintf("%d:%x", len(lines), sum[:8])
	}
	return out, nil
}
