package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
)

const (
	crashEnvDir     = "CASK_STORE_CRASH_DIR"
	crashEnvSeed    = "CASK_STORE_CRASH_SEED"
	crashWriters    = 2 // concurrent appenders in the child, so serialized appends interleave
	crashFeedsEach  = 3
	crashMaxBatch   = 12
	crashChildLimit = 60 * time.Second
)

func crashAuthor(i int) feeds.FeedRef { return testFeed(1000 + i) }

// crashMsg is the deterministic record the child appends for (author index,
// sequence), so the parent can rebuild every acknowledged record.
func crashMsg(ai int, sequence int64) Record {
	r := testMsg(crashAuthor(ai), sequence, "crash "+strings.Repeat("z", int(sequence%97)))
	r.Timestamp = 1.5e12 + float64(sequence)
	return r
}

// crashWorkload appends random batches from crashWriters goroutines until
// stop returns true or a limit of batches is reached (0: none), calling ack
// with one line per acknowledged Append: "ACK seq:ai:sequence ...".
func crashWorkload(s *Store, seed uint64, maxBatches int, stop func() bool, ack func(string)) error {
	var wg sync.WaitGroup
	errs := make(chan error, crashWriters)
	for w := range crashWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			next := make([]int64, crashFeedsEach)
			for i := range next {
				seq, _, _, err := s.Latest(crashAuthor(w*crashFeedsEach + i))
				if err != nil {
					errs <- err
					return
				}
				next[i] = seq + 1
			}
			for b := 0; (maxBatches == 0 || b < maxBatches) && !stop(); b++ {
				n := 1 + rng.IntN(crashMaxBatch)
				batch := make([]Record, 0, n)
				ais := make([]int, 0, n)
				for range n {
					i := rng.IntN(crashFeedsEach)
					ai := w*crashFeedsEach + i
					batch = append(batch, crashMsg(ai, next[i]))
					ais = append(ais, ai)
					next[i]++
				}
				seqs, err := s.Append(batch)
				if err != nil {
					errs <- err
					return
				}
				var line strings.Builder
				line.WriteString("ACK")
				for j, seq := range seqs {
					fmt.Fprintf(&line, " %d:%d:%d", seq, ais[j], batch[j].Sequence)
				}
				line.WriteString("\n")
				ack(line.String())
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// TestCrashChild is the child process of TestCrash (it appends until
// killed). Run without the environment variable it runs the same workload
// briefly in-process and checks the result.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnvDir)
	if dir == "" {
		s := openTest(t, t.TempDir())
		var acks atomic.Int64
		err := crashWorkload(s, 7, 5, func() bool { return false }, func(string) { acks.Add(1) })
		if err != nil {
			t.Fatal(err)
		}
		if acks.Load() != crashWriters*5 {
			t.Fatalf("%d acks, want %d", acks.Load(), crashWriters*5)
		}
		checkConsistent(t, s)
		return
	}
	seed, _ := strconv.ParseUint(os.Getenv(crashEnvSeed), 10, 64)
	s, err := Open(dir, Options{})
	if err != nil {
		fmt.Printf("ERR open: %v\n", err)
		os.Exit(3)
	}
	fmt.Print("READY\n")
	var mu sync.Mutex // one write per line keeps lines whole
	deadline := time.Now().Add(crashChildLimit)
	err = crashWorkload(s, seed, 0, func() bool { return time.Now().After(deadline) }, func(line string) {
		mu.Lock()
		os.Stdout.WriteString(line)
		mu.Unlock()
	})
	fmt.Printf("ERR workload: %v\n", err)
	os.Exit(4)
}

type crashAck struct {
	ai       int
	sequence int64
}

// TestCrash SIGKILLs a child process that appends in a loop, at random
// moments, and checks after every kill that the store reopens clean with
// every acknowledged append, consistent indexes and nothing past the tail.
func TestCrash(t *testing.T) {
	const rounds = 24
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	acked := map[int64]crashAck{}
	seen := map[int64]feeds.MessageRef{} // every record found after a reopen
	var lastTail int64
	readyRounds := 0
	for round := range rounds {
		early := round%6 == 5 // kill at a random moment, maybe during Open
		ready, lines, err := runCrashChild(t, dir, uint64(round), rng, early, round%4 == 0)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if ready {
			readyRounds++
		}
		for _, line := range lines {
			if strings.HasPrefix(line, "ERR") {
				t.Fatalf("round %d: child: %s", round, line)
			}
			if !strings.HasPrefix(line, "ACK ") {
				continue
			}
			for _, f := range strings.Fields(line)[1:] {
				var seq, seqn int64
				var ai int
				if _, err := fmt.Sscanf(f, "%d:%d:%d", &seq, &ai, &seqn); err != nil {
					t.Fatalf("round %d: bad ack %q", round, f)
				}
				acked[seq] = crashAck{ai, seqn}
			}
		}
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		tail := s.LastSeq()
		if tail < lastTail {
			t.Fatalf("round %d: log tail went back from %d to %d", round, lastTail, tail)
		}
		lastTail = tail
		for r, err := range s.Log(context.Background(), LogQuery{}) {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			if k, ok := seen[r.Seq]; ok && k != r.Key {
				t.Fatalf("round %d: seq %d changed after a reopen", round, r.Seq)
			}
			seen[r.Seq] = r.Key
			if a, ok := acked[r.Seq]; ok && !sameRecord(r, crashMsg(a.ai, a.sequence), true) {
				t.Fatalf("round %d: acknowledged seq %d (%d:%d) changed", round, r.Seq, a.ai, a.sequence)
			}
		}
		for seq, a := range acked {
			if seq > tail {
				t.Fatalf("round %d: acknowledged seq %d (%d:%d) lost: log tail is %d", round, seq, a.ai, a.sequence, tail)
			}
		}
		checkConsistent(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d rounds (%d reached READY), %d acknowledged records, log tail %d", rounds, readyRounds, len(acked), lastTail)
	if readyRounds < rounds/2 || len(acked) == 0 {
		t.Fatalf("the child made too little progress: %d ready rounds, %d acks", readyRounds, len(acked))
	}
}

// runCrashChild starts the child, kills it (early: 0-30 ms after start;
// otherwise 5-200 ms after it reports READY) and returns its complete lines.
// With checkLock it first checks that the store is locked while the child runs.
func runCrashChild(t *testing.T, dir string, seed uint64, rng *rand.Rand, early, checkLock bool) (bool, []string, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnvDir+"="+dir, crashEnvSeed+"="+strconv.FormatUint(seed, 10))
	out, err := cmd.StdoutPipe()
	if err != nil {
		return false, nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return false, nil, err
	}
	killed := false
	kill := func() {
		if !killed {
			killed = true
			_ = cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	defer kill()
	readyCh := make(chan struct{})
	linesCh := make(chan []string, 1)
	go func() {
		var lines []string
		br := bufio.NewReader(out)
		for {
			line, err := br.ReadString('\n')
			if err != nil { // EOF: a partial last line is not acknowledged
				break
			}
			if line == "READY\n" {
				close(readyCh)
			}
			lines = append(lines, strings.TrimSuffix(line, "\n"))
		}
		_, _ = io.Copy(io.Discard, out)
		linesCh <- lines
	}()
	ready := false
	if early {
		time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
	} else {
		select {
		case <-readyCh:
			ready = true
		case <-time.After(20 * time.Second):
			kill()
			return false, nil, errors.New("child never became ready")
		}
		if checkLock {
			if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
				kill()
				return ready, nil, fmt.Errorf("Open while the child holds the store: err = %v, want ErrLocked", err)
			}
		}
		time.Sleep(time.Duration(5+rng.IntN(196)) * time.Millisecond)
	}
	kill()
	lines := <-linesCh
	_ = cmd.Wait()
	return ready, lines, nil
}

// checkConsistent walks the whole log and cross-checks every index and
// summary through the public API, then runs Verify.
func checkConsistent(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	heads := map[feeds.FeedRef]FeedLatest{}
	var n int64
	for r, err := range s.Log(ctx, LogQuery{}) {
		if err != nil {
			t.Fatalf("walk log: %v", err)
		}
		n++
		if r.Seq != n {
			t.Fatalf("log seq %d at position %d", r.Seq, n)
		}
		if h := heads[r.Author]; r.Sequence != h.Sequence+1 {
			t.Fatalf("seq %d: %s sequence %d after %d", r.Seq, r.Author, r.Sequence, h.Sequence)
		}
		heads[r.Author] = FeedLatest{Author: r.Author, Sequence: r.Sequence, Key: r.Key, Seq: r.Seq}
		// Point lookups for a sample (Verify below checks every index entry):
		// the newest records, where a crash would leave damage, and a stride.
		if r.Seq <= s.LastSeq()-300 && r.Seq%50 != 0 {
			continue
		}
		if g, err := s.Get(r.Key); err != nil || g.Seq != r.Seq || !sameRecord(g, r, true) {
			t.Fatalf("Get(%s) = seq %d, %v; log has seq %d", r.Key, g.Seq, err, r.Seq)
		}
		if g, err := s.GetBySequence(r.Author, r.Sequence); err != nil || g.Seq != r.Seq {
			t.Fatalf("GetBySequence(%d) = seq %d, %v; log has seq %d", r.Sequence, g.Seq, err, r.Seq)
		}
	}
	if s.LastSeq() != n {
		t.Fatalf("LastSeq = %d, log has %d records", s.LastSeq(), n)
	}
	if _, err := s.At(n + 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("At(tail+1): err = %v, want ErrNotFound", err)
	}
	nf := 0
	for f, err := range s.Feeds() {
		if err != nil {
			t.Fatal(err)
		}
		if heads[f.Author] != f {
			t.Fatalf("Feeds yields %+v, log says %+v", f, heads[f.Author])
		}
		nf++
	}
	for a, h := range heads {
		seq, key, ok, err := s.Latest(a)
		if err != nil || !ok || seq != h.Sequence || key != h.Key {
			t.Fatalf("Latest(%s) = %d, %v; log says %d", a, seq, err, h.Sequence)
		}
		if _, err := s.GetBySequence(a, h.Sequence+1); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetBySequence past head of %s: %v", a, err)
		}
	}
	if m, f := s.Count(); m != n || f != int64(len(heads)) || nf != len(heads) {
		t.Fatalf("Count = %d, %d; log has %d records of %d feeds (Feeds yielded %d)", m, f, n, len(heads), nf)
	}
	if err := s.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}
