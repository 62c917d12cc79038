package query

import (
	"encoding/json"
	"testing"
)

// FuzzParse: the map-filter-reduce parser reads queries from callers. It
// must never panic, and a parsed query must run on any record without
// panicking.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`[{"$filter":{"value":{"content":{"type":"post"}}}},{"$map":["value","content","text"]}]`))
	f.Add([]byte(`{"$filter":{"timestamp":{"$gt":1,"$lt":2},"key":{"$prefix":"%"}}}`))
	f.Add([]byte(`[{"$filter":{"value":{"author":{"$in":["a","b"]}}}},{"$map":{"a":"key","b":true}}]`))
	f.Add([]byte(`[{"$reduce":{}}]`))
	rec := map[string]any{"key": "%x", "timestamp": 5.0, "value": map[string]any{"author": "a", "content": map[string]any{"type": "post", "text": "hi"}}}
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := NewPlan(Options{Query: json.RawMessage(in)})
		if err != nil {
			return
		}
		if out, ok := Run(p.Stages, rec); ok {
			if _, err := json.Marshal(out); err != nil {
				t.Fatalf("result does not marshal: %v", err)
			}
		}
		_ = p.Explain()
	})
}
