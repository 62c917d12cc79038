// Package roomweb is the client side of a room's web endpoints that a
// peer uses without a browser (protocol.md §8.7, §8.8): reading an alias
// (https://ROOM/alias/NAME?encoding=json or the consume-alias ssb: URI,
// whose signature it verifies) and claiming an HTTP invite (GET the invite
// with encoding=json, POST {id, invite} to postTo).
//
// It speaks HTTP and parses what rooms answer; it never dials SSB peers
// and keeps no state.
package roomweb

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/cask-ssb/cask/feeds"
)

// MaxBody bounds what is read of a room's HTTP answer.
const MaxBody = 64 << 10

// ErrForged is wrapped when an alias's signature does not verify.
var ErrForged = errors.New("the alias signature does not verify (forged or corrupted alias)")

// Alias is a verified alias: Room relays tunnels to User, who signed
// =room-alias-registration:ROOM:USER:ALIAS.
type Alias struct {
	Alias     string
	Room      feeds.FeedRef
	User      feeds.FeedRef
	Signature string
	// RoomAddress is the room's multiserver address (its key is Room).
	RoomAddress feeds.Address
}

// TunnelAddress is tunnel:@ROOM:@USER~shs:USERKEY.
func (a Alias) TunnelAddress() feeds.Address {
	return feeds.Address{Key: a.User, Portal: a.Room, Transport: feeds.TransportTunnel}
}

// IsAliasLink reports whether s names an alias: an http(s) URL whose path
// is /alias/NAME or whose host starts with a label (subdomain aliases), or
// a consume-alias ssb: URI. Only the form is checked.
func IsAliasLink(s string) bool {
	if strings.HasPrefix(s, "ssb:") {
		u, err := url.Parse(s)
		return err == nil && u.Query().Get("action") == "consume-alias"
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return false
	}
	return strings.HasPrefix(u.Path, "/alias/") || u.Path == "" || u.Path == "/"
}

// aliasFields are the alias JSON's and the consume-alias URI's fields.
type aliasFields struct {
	Status             string `json:"status"`
	Error              string `json:"error"`
	MultiserverAddress string `json:"multiserverAddress"`
	RoomID             string `json:"roomId"`
	UserID             string `json:"userId"`
	Alias              string `json:"alias"`
	Signature          string `json:"signature"`
}

// ParseAliasJSON reads and verifies the answer of GET
// https://ROOM/alias/NAME?encoding=json.
func ParseAliasJSON(body []byte) (Alias, error) {
	var f aliasFields
	if err := json.Unmarshal(body, &f); err != nil {
		return Alias{}, fmt.Errorf("alias: the room's answer is not the alias JSON: %w", err)
	}
	if !isSuccess(f.Status) {
		return Alias{}, fmt.Errorf("alias: the room says %s", describeFailure(f.Status, f.Error))
	}
	return f.verify()
}

// ParseAliasURI reads and verifies
// ssb:experimental?action=consume-alias&alias=…&userId=…&signature=…&roomId=…&multiserverAddress=….
func ParseAliasURI(s string) (Alias, error) {
	q, err := experimentalQuery(s, "consume-alias")
	if err != nil {
		return Alias{}, err
	}
	f := aliasFields{
		MultiserverAddress: q.Get("multiserverAddress"), RoomID: q.Get("roomId"), UserID: q.Get("userId"),
		Alias: q.Get("alias"), Signature: q.Get("signature"),
	}
	return f.verify()
}

func (f aliasFields) verify() (Alias, error) {
	room, err := feeds.ParseFeedRef(f.RoomID)
	if err != nil {
		return Alias{}, fmt.Errorf("alias: roomId: %w", err)
	}
	user, err := feeds.ParseFeedRef(f.UserID)
	if err != nil {
		return Alias{}, fmt.Errorf("alias: userId: %w", err)
	}
	if !validAlias(f.Alias) {
		return Alias{}, fmt.Errorf("alias: %q is not an alias (want a DNS label)", short(f.Alias))
	}
	addr, err := feeds.ParseAddress(f.MultiserverAddress)
	if err != nil {
		return Alias{}, fmt.Errorf("alias: multiserverAddress: %w", err)
	}
	if addr.Transport == feeds.TransportTunnel {
		return Alias{}, errors.New("alias: multiserverAddress: a room is reached directly, not through a tunnel")
	}
	if addr.Key != room {
		return Alias{}, fmt.Errorf("alias: multiserverAddress is the key of %s, not of the room %s", addr.Key, room)
	}
	sig, err := decodeSignature(f.Signature)
	if err != nil {
		return Alias{}, fmt.Errorf("alias: %w", err)
	}
	msg := "=room-alias-registration:" + room.String() + ":" + user.String() + ":" + f.Alias
	if !ed25519.Verify(user.PublicKey(), []byte(msg), sig) {
		return Alias{}, fmt.Errorf("alias %q of %s in room %s: %w", f.Alias, user, room, ErrForged)
	}
	return Alias{Alias: f.Alias, Room: room, User: user, Signature: f.Signature, RoomAddress: addr}, nil
}

// decodeSignature reads "BASE64.sig.ed25519" (URL-safe base64 is
// accepted, as ssb-room-client does).
func decodeSignature(s string) ([]byte, error) {
	b64, ok := strings.CutSuffix(s, ".sig.ed25519")
	if !ok {
		return nil, fmt.Errorf("signature %q: want BASE64.sig.ed25519", short(s))
	}
	b64 = strings.NewReplacer("-", "+", "_", "/").Replace(b64)
	sig, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("signature %q: want %d bytes of base64", short(s), ed25519.SignatureSize)
	}
	return sig, nil
}

// validAlias: a DNS label (letters, digits, hyphens inside), at most 63.
func validAlias(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ResolveAlias turns an alias link into a verified Alias: a consume-alias
// URI is read as it is; an http(s) link is fetched with encoding=json.
func ResolveAlias(ctx context.Context, hc *http.Client, link string) (Alias, error) {
	if strings.HasPrefix(link, "ssb:") {
		return ParseAliasURI(link)
	}
	u, err := withJSONEncoding(link)
	if err != nil {
		return Alias{}, fmt.Errorf("alias: %w", err)
	}
	body, err := get(ctx, hc, u)
	if err != nil {
		return Alias{}, fmt.Errorf("alias: %w", err)
	}
	return ParseAliasJSON(body)
}

// experimentalQuery parses ssb:experimental?action=ACTION&… and returns
// its query. The path may be read as an opaque part or as a host.
func experimentalQuery(s, action string) (url.Values, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("ssb URI: %w", err)
	}
	where := u.Opaque
	if where == "" {
		where = strings.TrimPrefix(u.Host+u.Path, "//")
	}
	if u.Scheme != "ssb" || strings.Trim(where, "/") != "experimental" {
		return nil, fmt.Errorf("ssb URI %q: want ssb:experimental?action=%s&…", short(s), action)
	}
	q := u.Query()
	if got := q.Get("action"); got != action {
		return nil, fmt.Errorf("ssb URI: action %q, want %s", short(got), action)
	}
	return q, nil
}

// withJSONEncoding adds encoding=json to an http(s) link.
func withJSONEncoding(link string) (string, error) {
	u, err := url.Parse(link)
	if err != nil {
		return "", err
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return "", fmt.Errorf("%q: want an http(s) link", short(link))
	}
	q := u.Query()
	q.Set("encoding", "json")
	u.RawQuery = q.Encode()
	u.Fragment = ""
	return u.String(), nil
}

func get(ctx context.Context, hc *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	return do(hc, req)
}

// do sends req and returns at most MaxBody bytes of the answer; a non-2xx
// answer still returns its body (rooms explain failures in JSON), unless
// it is empty.
func do(hc *http.Client, req *http.Request) ([]byte, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read the answer: %w", req.Method, req.URL.Redacted(), err)
	}
	if len(body) > MaxBody {
		return nil, fmt.Errorf("%s %s: the answer is larger than %d bytes", req.Method, req.URL.Redacted(), MaxBody)
	}
	if resp.StatusCode/100 != 2 && len(strings.TrimSpace(string(body))) == 0 {
		return nil, fmt.Errorf("%s %s: %s", req.Method, req.URL.Redacted(), resp.Status)
	}
	if resp.StatusCode/100 != 2 && !json.Valid(body) {
		return nil, fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Redacted(), resp.Status, short(strings.TrimSpace(string(body))))
	}
	return body, nil
}

// isSuccess: the spec says "successful"; go-ssb-room sends "success".
func isSuccess(status string) bool { return status == "successful" || status == "success" }

func describeFailure(status, msg string) string {
	switch {
	case msg != "":
		return short(msg)
	case status == "":
		return "nothing (no status)"
	}
	return "status " + short(status)
}

func short(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}
