package wsconn

import (
	"log/slog"
	"net/http"
	"testing"
)

func TestRemoteAddr(t *testing.T) {
	trusted, err := ParseTrustedProxies([]string{"10.0.0.0/8", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	w := NewHandler(nil, trusted, slog.New(slog.DiscardHandler))
	defer w.Close()
	tests := []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"no header", "192.0.2.1:5000", nil, "192.0.2.1:5000"},
		{"untrusted peer: header ignored", "192.0.2.1:5000", []string{"198.51.100.7"}, "192.0.2.1:5000"},
		{"trusted proxy", "10.1.2.3:5000", []string{"198.51.100.7"}, "198.51.100.7:0"},
		{"trusted proxy, last hop wins", "10.1.2.3:5000", []string{"203.0.113.9, 198.51.100.7"}, "198.51.100.7:0"},
		{"trusted proxy, two headers", "10.1.2.3:5000", []string{"203.0.113.9", "198.51.100.8"}, "198.51.100.8:0"},
		{"trusted IPv6 proxy", "[::1]:5000", []string{"2001:db8::1"}, "[2001:db8::1]:0"},
		{"trusted proxy, malformed header", "10.1.2.3:5000", []string{"not an ip"}, "10.1.2.3:5000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tc.peer, Header: http.Header{}}
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := w.RemoteAddr(r).String(); got != tc.want {
				t.Errorf("remote %s, want %s", got, tc.want)
			}
		})
	}
}

// FuzzRemoteAddr: any X-Forwarded-For from a trusted proxy gives an
// address, never a panic.
func FuzzRemoteAddr(f *testing.F) {
	trusted, _ := ParseTrustedProxies([]string{"10.0.0.0/8"})
	w := NewHandler(nil, trusted, slog.New(slog.DiscardHandler))
	defer w.Close()
	for _, s := range []string{"198.51.100.7", "a, b,,", "::ffff:1.2.3.4", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, xff string) {
		r := &http.Request{RemoteAddr: "10.0.0.1:1", Header: http.Header{"X-Forwarded-For": {xff}}}
		if w.RemoteAddr(r) == nil {
			t.Fatal("nil address")
		}
	})
}
