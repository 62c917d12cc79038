package ebt

import (
	"testing"

	"github.com/cask-ssb/cask/feeds"
)

const testAuthor = "@FCX/tsDLpubCPKKfIrw4gc+SQkHcaD17s7GI6i/ziWY=.ed25519"

func TestAuthorSequence(t *testing.T) {
	author, err := feeds.ParseFeedRef(testAuthor)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		msg  string
		ok   bool
		seq  int64
	}{
		{"classic", `{"previous":null,"author":"` + testAuthor + `","sequence":1,"timestamp":1,"hash":"sha256","content":{"type":"post","author":"x","sequence":9}}`, true, 1},
		{"spaces", `{"author" : "` + testAuthor + `", "sequence" : 12345}`, true, 12345},
		{"no author", `{"sequence":3}`, false, 0},
		{"author not a string", `{"author":7,"sequence":3}`, false, 0},
		{"bad feed", `{"author":"@nope","sequence":3}`, false, 0},
		{"sequence not a number", `{"author":"` + testAuthor + `","sequence":"3"}`, false, 0},
		{"unterminated", `{"author":"` + testAuthor[:10], false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, seq, ok := authorSequence([]byte(tc.msg))
			if ok != tc.ok || (ok && (f != author || seq != tc.seq)) {
				t.Fatalf("authorSequence = %v, %d, %v; want %v, %d, %v", f, seq, ok, author, tc.seq, tc.ok)
			}
		})
	}
}

// FuzzAuthorSequence: the hint is read from whatever a peer sends.
func FuzzAuthorSequence(f *testing.F) {
	f.Add([]byte(`{"author":"` + testAuthor + `","sequence":1}`))
	f.Add([]byte(`{"author":"","sequence":99999999999999999999999}`))
	f.Add([]byte(`"author""sequence"`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if f, seq, ok := authorSequence(b); ok {
			if seq < 0 {
				t.Fatalf("%q: sequence %d", b, seq)
			}
			if _, err := feeds.ParseFeedRef(f.String()); err != nil {
				t.Fatalf("%q: author %v does not print as a feed id: %v", b, f, err)
			}
		}
	})
}
