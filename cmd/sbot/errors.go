package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"syscall"

	"github.com/cask-ssb/cask/secretstream"
)

// Error texts for people: the CLI prints "sbot: COMMAND: what went wrong",
// without the layers of Go context prefixes ("publish: classic: create:")
// and without Go type names from encoding/json.

// goPrefix is a context prefix as Go code writes them: one lower-case
// word (package or function name) followed by ": ".
var goPrefix = regexp.MustCompile(`^[a-z][a-z0-9_.]*: `)

// stripPrefixes removes leading one-word context prefixes from a message,
// keeping at least the last segment.
func stripPrefixes(msg string) string {
	for {
		loc := goPrefix.FindStringIndex(msg)
		if loc == nil || loc[1] >= len(msg) {
			return msg
		}
		msg = msg[loc[1]:]
	}
}

// jsonTypeErr matches encoding/json's type errors, which name Go types.
var jsonTypeErr = regexp.MustCompile(`(?:json: )?cannot unmarshal (\w+) into Go (?:value|struct field (\S+)) of type ([\w\[\]\.\*]+(?: \{\})?)`)

// humanJSON rewrites "cannot unmarshal array into Go value of type
// map[string]interface {}" as "want a JSON object, got an array".
func humanJSON(msg string) string {
	return jsonTypeErr.ReplaceAllStringFunc(msg, func(s string) string {
		m := jsonTypeErr.FindStringSubmatch(s)
		out := fmt.Sprintf("want %s, got %s", goTypeKind(m[3]), withArticle(m[1]))
		if m[2] != "" {
			f := m[2]
			if i := strings.LastIndex(f, "."); i >= 0 {
				f = f[i+1:]
			}
			out = fmt.Sprintf("field %q: %s", f, out)
		}
		return out
	})
}

func goTypeKind(t string) string {
	t = strings.TrimLeft(t, "*")
	switch {
	case strings.HasPrefix(t, "map["), strings.Contains(t, "."), t == "struct":
		return "a JSON object"
	case strings.HasPrefix(t, "[]"), strings.HasPrefix(t, "["):
		return "a JSON array"
	case t == "string":
		return "a string"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"), strings.HasPrefix(t, "float"):
		return "a number"
	}
	return "another JSON type"
}

func withArticle(jsonKind string) string {
	switch jsonKind {
	case "array", "object":
		return "an " + jsonKind
	case "bool":
		return "a boolean"
	}
	return "a " + jsonKind
}

// jsonKind names the JSON type of data ("an object", "an array", ...), or
// "" when it is not JSON.
func jsonKind(data []byte) string {
	s := strings.TrimSpace(string(data))
	if s == "" {
		return "nothing"
	}
	switch s[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// humanMessage cleans an error text from the daemon or a library.
func humanMessage(msg string) string {
	return humanJSON(stripPrefixes(msg))
}

// humanDialError explains why a handshake with a daemon or peer at addr
// failed, as far as the secret handshake lets us tell: a wrong network key
// is seen at once (the server hangs up after our hello); a wrong server key,
// a server that blocks us and a server that is full all look the same (it
// hangs up after our authentication).
func humanDialError(addr string, err error) error {
	switch {
	case errors.Is(err, secretstream.ErrWrongAppKey):
		return &humanErr{addr + " uses another network key: check --caps (or SSB_CAPS)", err}
	case errors.Is(err, secretstream.ErrServerAuthFailed):
		return &humanErr{addr + " did not accept the handshake: either its key is not the one in the address, or it refused us (it blocks our key, or it has too many connections); the secret handshake does not say which", err}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &humanErr{"nothing listens at " + addr + " (connection refused)", err}
	}
	return err
}

// humanErr is an error with a message for people that still wraps the
// original error for errors.Is.
type humanErr struct {
	msg string
	err error
}

func (e *humanErr) Error() string { return e.msg }
func (e *humanErr) Unwrap() error { return e.err }

// humanRemoteDialMessage does the same for the text of an error the daemon
// returned for `sbot connect` (it only has the message).
func humanRemoteDialMessage(msg string) string {
	switch {
	case strings.Contains(msg, "peer uses a different network key"):
		return "the peer uses another network key (the daemon's --caps differs from the peer's)"
	case strings.Contains(msg, "server authentication failed"):
		return "the peer did not accept the handshake: either its key is not the one in the address, or it refused us (it blocks our key, or it has too many connections); the secret handshake does not say which"
	case strings.Contains(msg, "connection refused"):
		return "nothing listens at that address (connection refused)"
	}
	return humanMessage(msg)
}
