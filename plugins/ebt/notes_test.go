package ebt

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/cask-ssb/cask/feeds"
)

func TestNotesVectors(t *testing.T) {
	data, err := os.ReadFile("../../testdata/ebt/generated-notes.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Encode []struct {
			Sequence int64 `json:"sequence"`
			Receive  bool  `json:"receive"`
			Note     int64 `json:"note"`
		} `json:"encode"`
		Decode []struct {
			Note      float64 `json:"note"`
			Sequence  int64   `json:"sequence"`
			Receive   bool    `json:"receive"`
			Replicate bool    `json:"replicate"`
		} `json:"decode"`
		ExampleClock map[string]float64 `json:"example_clock"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Encode) == 0 || len(v.Decode) == 0 {
		t.Fatal("no vectors")
	}
	for _, e := range v.Encode {
		if got := Note(e.Sequence, e.Receive); got != e.Note {
			t.Errorf("Note(%d, %v) = %d, want %d", e.Sequence, e.Receive, got, e.Note)
		}
	}
	for _, d := range v.Decode {
		got := DecodeNote(d.Note)
		if got.Replicate != d.Replicate || (d.Replicate && (got.Sequence != d.Sequence || got.Receive != d.Receive)) {
			t.Errorf("DecodeNote(%v) = %+v, want %+v", d.Note, got, d)
		}
	}
	want := map[int64]bool{}
	for _, n := range v.ExampleClock {
		d := DecodeNote(n)
		if d.Replicate {
			want[d.Sequence] = d.Receive
		} else {
			want[-1] = false
		}
	}
	if r, ok := want[17]; !ok || !r {
		t.Errorf("example clock: no 17/receive in %v", v.ExampleClock)
	}
	if r, ok := want[0]; !ok || r {
		t.Errorf("example clock: no 0/no-receive in %v", v.ExampleClock)
	}
	if _, ok := want[-1]; !ok {
		t.Errorf("example clock: no unreplicated feed in %v", v.ExampleClock)
	}
}

func TestParseNotes(t *testing.T) {
	a, b := feeds.FeedRef{1}, feeds.FeedRef{2}
	tests := []struct {
		in   string
		want map[feeds.FeedRef]Decoded
		err  bool
	}{
		{`{}`, map[feeds.FeedRef]Decoded{}, false},
		{`{"` + a.String() + `":12,"` + b.String() + `":-1}`, map[feeds.FeedRef]Decoded{a: {true, true, 6}, b: {false, false, -1}}, false},
		{`{"clock":{"` + a.String() + `":3}}`, map[feeds.FeedRef]Decoded{a: {true, false, 1}}, false},
		{`{"@nope":4,"` + a.String() + `":"x","` + b.String() + `":1.5}`, map[feeds.FeedRef]Decoded{b: {Sequence: -1}}, false},
		{`[1]`, nil, true},
		{`nope`, nil, true},
	}
	for _, tc := range tests {
		got, err := ParseNotes([]byte(tc.in))
		if (err != nil) != tc.err {
			t.Fatalf("%s: err %v", tc.in, err)
		}
		if tc.err {
			continue
		}
		if len(got) != len(tc.want) {
			t.Fatalf("%s: got %v, want %v", tc.in, got, tc.want)
		}
		for f, d := range tc.want {
			if got[f] != d {
				t.Fatalf("%s: %v = %+v, want %+v", tc.in, f, got[f], d)
			}
		}
	}
}

// FuzzParseNotes: notes come from the network.
func FuzzParseNotes(f *testing.F) {
	a := feeds.FeedRef{1}.String()
	for _, s := range []string{`{}`, `{"` + a + `":12}`, `{"clock":{"` + a + `":-1}}`, `{"` + a + `":1e308}`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		notes, err := ParseNotes(data)
		if err != nil {
			return
		}
		for _, d := range notes {
			if d.Replicate && (d.Sequence < -(1<<30) || d.Sequence >= 1<<30) {
				t.Fatalf("%q: decoded %+v", data, d)
			}
			if !d.Replicate && d.Sequence != -1 {
				t.Fatalf("%q: decoded %+v", data, d)
			}
		}
	})
}
