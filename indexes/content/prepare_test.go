package content

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/feeds/privatebox"
	"github.com/cask-ssb/cask/feeds/store"
)

// mixedRecords are n records of several shapes: posts with links, replies,
// box1 to me and to someone else, broken JSON, a non-object content.
func mixedRecords(t testing.TB, me, other feeds.FeedRef, n int) []store.Record {
	t.Helper()
	recs := make([]store.Record, n)
	for i := range recs {
		var content string
		switch i % 6 {
		case 0:
			content = fmt.Sprintf(`{"type":"post","text":"p%d","mentions":[{"link":%q}]}`, i, feedA)
		case 1:
			content = fmt.Sprintf(`{"type":"post","root":%q,"branch":[%q,"x"],"text":"r%d"}`, msgA, msgB, i)
		case 2, 3:
			to := me
			if i%6 == 3 {
				to = other
			}
			ct, err := privatebox.Seal(fmt.Appendf(nil, `{"type":"dm","n":%d,"about":%q}`, i, blobA), []feeds.FeedRef{to}, nil)
			if err != nil {
				t.Fatal(err)
			}
			s, _ := json.Marshal(privatebox.BoxContent(ct))
			content = string(s)
		case 4:
			content = `{"type":"vote","vote":{"link":"` + msgB + `"`
		case 5:
			content = `"just a string"`
		}
		var key feeds.MessageRef
		key[0], key[1] = byte(i), byte(i>>8)
		recs[i] = store.Record{Seq: int64(i + 1), Key: key, Value: fmt.Appendf(nil, `{"timestamp":%d,"content":%s}`, 1000+i, content)}
	}
	return recs
}

// snapshot copies the parts of a Msg that Decode's next call may reuse.
func snapshot(m *Msg) Msg {
	c := *m
	c.Content = append([]byte(nil), m.Content...)
	c.Links = append([]Link(nil), m.Links...)
	c.Branch = append([]string(nil), m.Branch...)
	return c
}

// TestPrepareMatchesDecode: records decoded ahead by Prepare (in chunks,
// each passed twice as two indexers would, on several goroutines) give
// what Decode gives without it, also when records are skipped or decoded
// twice in a row, and when a record outside the prepared chunk comes.
func TestPrepareMatchesDecode(t *testing.T) {
	me, err := feeds.GenerateKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := feeds.GenerateKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	recs := mixedRecords(t, me.ID, other.ID, 600)
	plain := NewDecoder(&me)
	want := make([]Msg, len(recs))
	for i := range recs {
		want[i] = snapshot(plain.Decode(&recs[i]))
	}
	if !want[2].Private || want[3].Private || !want[3].Boxed {
		t.Fatalf("fixture: %+v %+v", want[2], want[3])
	}
	d := NewDecoder(&me)
	for lo := 0; lo < len(recs); lo += 100 {
		chunk := recs[lo : lo+100]
		d.Prepare(chunk)
		d.Prepare(chunk) // a second indexer sharing d: no second decode
	}
	if len(d.ready) != len(recs)/100 {
		t.Fatalf("%d chunks waiting, want %d", len(d.ready), len(recs)/100)
	}
	for i := range recs {
		if i%50 == 7 {
			continue // a record an indexer set skipped: its result is dropped
		}
		got := d.Decode(&recs[i])
		again := d.Decode(&recs[i])
		if got != again {
			t.Fatalf("record %d decoded twice in a row: new result", i)
		}
		if !reflect.DeepEqual(snapshot(got), want[i]) {
			t.Fatalf("record %d: prepared %+v, want %+v", i, snapshot(got), want[i])
		}
	}
	if len(d.ready) != 0 {
		t.Fatalf("%d chunks left after every record", len(d.ready))
	}
	// A record Prepare never saw (an append after the rebuild) is decoded.
	extra := mixedRecords(t, me.ID, other.ID, 3)[2]
	extra.Seq = int64(len(recs) + 1)
	if got := d.Decode(&extra); !got.Private || got.Type != "dm" {
		t.Fatalf("after the prepared records: %+v", got)
	}
	d.Prepare(recs[:10])
	d.Forget()
	if got := d.Decode(&recs[0]); !reflect.DeepEqual(snapshot(got), want[0]) || len(d.ready) != 0 {
		t.Fatalf("after Forget: %+v, %d chunks", snapshot(got), len(d.ready))
	}
}

// BenchmarkPrepare: decoding a rebuild's chunk of 1,024 mixed records
// (one in three box1, half of those ours) on one goroutine (Decode one by
// one) and on every core (Prepare, then Decode takes the results). The
// ratio sequential/prepared is what the rebuild's decoding gains from the
// cores (≈ GOMAXPROCS on an idle machine).
func BenchmarkPrepare(b *testing.B) {
	me, err := feeds.GenerateKeyPair(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	other, err := feeds.GenerateKeyPair(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	recs := mixedRecords(b, me.ID, other.ID, 1024)
	var seq, par time.Duration
	b.ResetTimer()
	for i := range b.N {
		for _, prepare := range []bool{i%2 == 0, i%2 != 0} { // alternate which goes first
			d := NewDecoder(&me)
			t0 := time.Now()
			if prepare {
				d.Prepare(recs)
			}
			private := 0
			for j := range recs {
				if d.Decode(&recs[j]).Private {
					private++
				}
			}
			if private != len(recs)/6+1 && private != len(recs)/6 {
				b.Fatalf("%d private records", private)
			}
			if prepare {
				par += time.Since(t0)
			} else {
				seq += time.Since(t0)
			}
		}
	}
	b.ReportMetric(float64(seq.Nanoseconds())/float64(b.N*len(recs)), "ns/rec-sequential")
	b.ReportMetric(float64(par.Nanoseconds())/float64(b.N*len(recs)), "ns/rec-prepared")
	b.ReportMetric(float64(seq)/float64(par), "sequential/prepared")
}
