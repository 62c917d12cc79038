package sbot_test

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cask-ssb/cask/bench/fill"
	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/plugins/types"
	"github.com/cask-ssb/cask/plugins/viewread"
	"github.com/cask-ssb/cask/sbot"
)

// viewsRepo fills a repo (its own secret = reader) with n messages of
// viewContent (posts with links, votes, abouts, contacts, one in seven
// private to the repo's key), over 100 feeds.
func viewsRepo(b *testing.B, n int, content func([]feeds.KeyPair, feeds.FeedRef) func(int, int64) []byte) string {
	b.Helper()
	repo := b.TempDir()
	kp, _, err := feeds.LoadOrCreateSecret(filepath.Join(repo, "secret"))
	if err != nil {
		b.Fatal(err)
	}
	authors, err := fill.Keys("views-bench", 100)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := fill.Repo(context.Background(), repo, fill.Options{Authors: authors, Messages: n, Content: content(authors, kp.ID)}); err != nil {
		b.Fatal(err)
	}
	b.Logf("filled %d messages in %s", n, time.Since(start).Round(time.Millisecond))
	return repo
}

// BenchmarkReindex: `sbot reindex` of every index (contacts, bytype,
// links, about, threads, private) over 100,000 messages, one pass over
// the log, private messages decrypted. Reports msgs/s and s/reindex.
func BenchmarkReindex(b *testing.B) {
	n := 100000
	if testing.Short() {
		n = 20000
	}
	repo := viewsRepo(b, n, viewContent)
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		st, err := sbot.OpenOfflineReindex(repo, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		if msgs, _ := st.Count(); msgs != int64(n) {
			b.Fatalf("%d messages", msgs)
		}
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
	}
	el := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(el, "s/reindex")
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/reindex")
	b.ReportMetric(float64(n)/el, "msgs/s")
}

// BenchmarkMessagesByType: messagesByType of a type with 10,000 hits among
// 1,000,000 messages (every hundredth message is of type "rare"), read
// from the by-type index with every record (the daemon's handler path
// without the socket). Reports ms/query.
func BenchmarkMessagesByType(b *testing.B) {
	n, every := 1000000, 100
	if testing.Short() {
		n = 100000 // 1,000 hits
	}
	repo := viewsRepo(b, n, func([]feeds.KeyPair, feeds.FeedRef) func(int, int64) []byte {
		return func(author int, seq int64) []byte {
			if (int64(author)*7919+seq)%int64(every) == 0 {
				return []byte(fmt.Sprintf(`{"type":"rare","text":"rare %d/%d"}`, author, seq))
			}
			return fill.Post(author, seq)
		}
	})
	st, err := sbot.OpenOfflineRead(repo)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	q, _, err := types.Query(types.Options{Type: "rare"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	hits := 0
	b.ResetTimer()
	for b.Loop() {
		hits = 0
		for _, err := range viewread.Run(ctx, st, q) {
			if err != nil {
				b.Fatal(err)
			}
			hits++
		}
	}
	if hits < n/every*9/10 || hits > n/every*11/10 {
		b.Fatalf("%d hits", hits)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/query")
	b.ReportMetric(float64(hits), "hits")
}

// cpuTime is the process's user+system CPU time so far (the load of
// other processes on the machine does not count).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
