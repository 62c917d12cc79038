package ebt

import (
	"encoding/json"
	"os"
	"testing"
)

func TestNotesVectors(t *testing.T) {
	data, err := os.ReadFile("../../../shared/testdata/ebt/generated-notes.json")
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
