package content

import (
	"encoding/json"
	"testing"
)

// FuzzExtractLinks: the link extractor reads message contents from the
// network. It must never panic, and every link it returns must be a valid
// ref found as a top-level value of valid JSON input.
func FuzzExtractLinks(f *testing.F) {
	f.Add([]byte(`{"type":"contact","contact":"` + feedA + `"}`))
	f.Add([]byte(`{"mentions":["` + feedA + `",{"link":"` + msgA + `"}]}`))
	f.Add([]byte(`{"a":{"link":"` + blobA + `"},"b":[[[]]],"c":"\ud800"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		links := ExtractLinks(in, nil)
		for _, l := range links {
			if !IsLink(l.Dest) {
				t.Fatalf("link %q is not a ref", l.Dest)
			}
		}
		var m Msg
		Fields(in, &m, nil)
		if json.Valid(in) {
			if _, err := skipValue(in, 0); err != nil {
				t.Fatalf("valid JSON %q refused: %v", in, err)
			}
		}
	})
}
