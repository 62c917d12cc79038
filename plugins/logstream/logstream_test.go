package logstream

import (
	"encoding/json"
	"testing"

	"github.com/cask-ssb/cask/feeds/store"
	"github.com/cask-ssb/cask/plugins/history"
)

func TestParseLogArgs(t *testing.T) {
	tests := []struct {
		args string
		want store.LogQuery
		f    history.Format
	}{
		{`[]`, store.LogQuery{Old: true}, history.Format{Keys: true, Values: true}},
		{`[null]`, store.LogQuery{Old: true}, history.Format{Keys: true, Values: true}},
		{`[{}]`, store.LogQuery{Old: true}, history.Format{Keys: true, Values: true}},
		{`[{"gt":5,"lte":9,"limit":3,"reverse":true}]`, store.LogQuery{Gt: 5, Lte: 9, Limit: 3, Reverse: true, Old: true}, history.Format{Keys: true, Values: true}},
		{`[{"live":true,"old":false,"keys":false}]`, store.LogQuery{Live: true}, history.Format{Values: true}},
		{`[{"gte":2,"lt":4,"values":false}]`, store.LogQuery{Gte: 2, Lt: 4, Old: true}, history.Format{Keys: true}},
		{`[{"limit":0}]`, store.LogQuery{Limit: -1, Old: true}, history.Format{Keys: true, Values: true}},
		{`[{"lt":1}]`, store.LogQuery{Lt: 1, Limit: -1, Old: true}, history.Format{Keys: true, Values: true}},
	}
	for _, tc := range tests {
		q, f, err := ParseLogArgs(json.RawMessage(tc.args))
		if err != nil {
			t.Fatalf("%s: %v", tc.args, err)
		}
		if q != tc.want || f != tc.f {
			t.Errorf("%s: got %+v %+v, want %+v %+v", tc.args, q, f, tc.want, tc.f)
		}
	}
	for _, bad := range []string{`{}`, `[{"gt":"x"}]`, `[5]`} {
		if _, _, err := ParseLogArgs(json.RawMessage(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// FuzzParseLogArgs: createLogStream options come from a client; parsing
// must never panic.
func FuzzParseLogArgs(f *testing.F) {
	for _, s := range []string{`[]`, `[{}]`, `[null]`, `[{"gt":5,"lt":1,"limit":0}]`, `[{"gte":1e400}]`, `[{"live":1}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		q, _, err := ParseLogArgs(json.RawMessage(data))
		if err == nil && (q.Limit < -1 || q.Limit > 1<<31 || q.Gt < -(1<<53) || q.Lte > 1<<53) {
			t.Fatalf("%q gives an out-of-range query %+v", data, q)
		}
	})
}
