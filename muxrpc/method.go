package muxrpc

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Method is a muxrpc method name as its parts, e.g. {"ebt", "replicate"}.
type Method []string

// ParseMethod splits a dotted name: ParseMethod("ebt.replicate").
func ParseMethod(s string) Method {
	if s == "" {
		return nil
	}
	return Method(strings.Split(s, "."))
}

// String joins the parts with ".".
func (m Method) String() string { return strings.Join(m, ".") }

// Equal reports whether m and o have the same parts.
func (m Method) Equal(o Method) bool {
	if len(m) != len(o) {
		return false
	}
	for i := range m {
		if m[i] != o[i] {
			return false
		}
	}
	return true
}

// UnmarshalJSON accepts an array of strings or a single string (JS muxrpc
// sends "manifest" as a plain string).
func (m *Method) UnmarshalJSON(b []byte) error {
	var parts []string
	if err := json.Unmarshal(b, &parts); err == nil {
		if len(parts) == 0 {
			return errors.New("empty method name")
		}
		*m = parts
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("method name must be a string or an array of strings: %w", err)
	}
	if s == "" {
		return errors.New("empty method name")
	}
	*m = Method{s}
	return nil
}

// CallType is the kind of a call.
type CallType string

// Call types as spelled in requests and manifests. TypeSync appears only in
// manifests; on the wire a sync call is an async request.
const (
	TypeAsync  CallType = "async"
	TypeSource CallType = "source"
	TypeSink   CallType = "sink"
	TypeDuplex CallType = "duplex"
	TypeSync   CallType = "sync"
)

// IsStream reports whether calls of this type use the stream flag.
func (t CallType) IsStream() bool {
	return t == TypeSource || t == TypeSink || t == TypeDuplex
}
