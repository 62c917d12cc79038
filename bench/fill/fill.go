// Package fill writes signed classic messages straight into a repo's store,
// so that benchmarks can start a daemon on a store that already holds many
// messages without publishing them one by one.
//
// It is a benchmark tool: it must never write to a repo whose daemon is
// running (it takes the repo lock through sbot.OpenOffline, so it cannot),
// and its keys are throw-away test keys, never a user's identity unless the
// caller passes one explicitly.
package fill

import (
	"context"
	"crypto/sha256"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/classic"
	"github.com/cask-ssb/cask/feeds/feedlog"
	"github.com/cask-ssb/cask/sbot"
)

// chunk is how many messages of one feed are appended per store call.
const chunk = 1000

// lorem is the text the default content cuts its posts from.
const lorem = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor " +
	"incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud " +
	"exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure " +
	"dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur. " +
	"Excepteur sint occaecat cupidatat non proident, sunt in culpa qui officia deserunt mollit " +
	"anim id est laborum. Sed ut perspiciatis unde omnis iste natus error sit voluptatem " +
	"accusantium doloremque laudantium, totam rem aperiam, eaque ipsa quae ab illo inventore."

// Options say what to write.
type Options struct {
	// Authors write the messages; Messages are spread evenly over them
	// (the first authors get one more when it does not divide).
	Authors []feeds.KeyPair
	// Messages is the total number of messages.
	Messages int
	// Content returns the content of an author's message seq (1-based).
	// Nil means Post.
	Content func(author int, seq int64) []byte
	// Start is the claimed timestamp of every feed's first message;
	// later ones are 1 ms apart. Zero means an hour before now.
	Start time.Time
}

// Post is the default content: a post of 20..620 characters of lorem
// ipsum (about 700 bytes per stored message on average, like the
// ssb-fixtures sample), varying with author and seq.
func Post(author int, seq int64) []byte {
	h := sha256.Sum256([]byte(strconv.Itoa(author) + "/" + strconv.FormatInt(seq, 10)))
	n := 20 + (int(h[0])<<8|int(h[1]))%601
	b := make([]byte, 0, n+64)
	b = append(b, `{"type":"post","text":"`...)
	for i := 0; i < n; i++ {
		b = append(b, lorem[(int(h[2])+i)%len(lorem)])
	}
	b = append(b, `","n":`...)
	b = strconv.AppendInt(b, seq, 10)
	return append(b, '}')
}

// Keys derives n deterministic key pairs from a label (test keys only).
func Keys(label string, n int) ([]feeds.KeyPair, error) {
	out := make([]feeds.KeyPair, n)
	for i := range out {
		seed := sha256.Sum256([]byte(label + "/" + strconv.Itoa(i)))
		kp, err := feeds.KeyPairFromSeed(seed[:])
		if err != nil {
			return nil, fmt.Errorf("fill: key %d: %w", i, err)
		}
		out[i] = kp
	}
	return out, nil
}

// Repo locks repo (no daemon may be running on it), appends the messages
// to its store and closes it. Every author's feed must be empty or absent.
func Repo(ctx context.Context, repo string, o Options) error {
	st, err := sbot.OpenOffline(repo)
	if err != nil {
		return fmt.Errorf("fill %s: %w", repo, err)
	}
	if err := Store(ctx, st.Writer, o); err != nil {
		st.Close()
		return err
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("fill %s: close: %w", repo, err)
	}
	return nil
}

// Writer stores messages whose signatures the caller made
// (feeds/feedlog.Log).
type Writer interface {
	AddVerified(ctx context.Context, msgs []*classic.Message) feedlog.Result
}

// Store signs the messages and appends them through the feed writer w,
// one goroutine per CPU, each writing whole feeds in chunks (so receive
// order interleaves feeds; the writer group-commits the chunks).
func Store(ctx context.Context, st Writer, o Options) error {
	if len(o.Authors) == 0 || o.Messages <= 0 {
		return fmt.Errorf("fill: need at least one author and one message (got %d, %d)", len(o.Authors), o.Messages)
	}
	content := o.Content
	if content == nil {
		content = Post
	}
	start := o.Start
	if start.IsZero() {
		start = time.Now().Add(-time.Hour)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan int)
	errs := make(chan error, len(o.Authors))
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range jobs {
				n := o.Messages / len(o.Authors)
				if a < o.Messages%len(o.Authors) {
					n++
				}
				if err := writeFeed(ctx, st, o.Authors[a], a, n, content, start); err != nil {
					errs <- err
					cancel()
				}
			}
		}()
	}
send:
	for a := range o.Authors {
		select {
		case jobs <- a:
		case <-ctx.Done():
			break send
		}
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	return ctx.Err()
}

func writeFeed(ctx context.Context, st Writer, kp feeds.KeyPair, author, n int, content func(int, int64) []byte, start time.Time) error {
	var state *classic.FeedState
	ts := float64(start.UnixMilli())
	recs := make([]*classic.Message, 0, chunk)
	for seq := int64(1); seq <= int64(n); seq++ {
		m, err := classic.Create(kp.Private, state, ts+float64(seq), classic.RawJSON(content(author, seq)), nil)
		if err != nil {
			return fmt.Errorf("fill: create %s seq %d: %w", kp.ID, seq, err)
		}
		s := classic.StateAfter(m)
		state = &s
		recs = append(recs, m)
		if len(recs) == chunk || seq == int64(n) {
			if err := ctx.Err(); err != nil {
				return err
			}
			if res := st.AddVerified(ctx, recs); res.Err != nil {
				return fmt.Errorf("fill: append %s up to seq %d: %w", kp.ID, seq, res.Err)
			}
			recs = recs[:0]
		}
	}
	return nil
}
