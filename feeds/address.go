package feeds

import (
	"encoding/base64"
	"fmt"
	"math"
	"net"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DefaultPort is the TCP port SSB peers listen on by default.
const DefaultPort = 8008

// Transports an Address can name (multiserver protocol names).
const (
	TransportNet   = "net"
	TransportWS    = "ws"
	TransportWSS   = "wss"
	TransportOnion = "onion"
	// TransportTunnel is a connection relayed by a room (protocol.md §8.5):
	// "tunnel:@ROOM:@TARGET~shs:KEY".
	TransportTunnel = "tunnel"
)

// Address is a peer address with a secret-handshake key: the multiserver
// form "net:HOST:PORT~shs:KEY" (ssb-ref's parseAddress shape).
type Address struct {
	Host string
	Port int
	Key  FeedRef
	// Transport is the multiserver transport: "" or TransportNet (TCP),
	// TransportWS, TransportWSS, TransportOnion or TransportTunnel.
	Transport string
	// Portal is the room that relays a tunnel address (Transport
	// TransportTunnel; Host and Port are then empty, Key is the target).
	Portal FeedRef
}

// String returns the multiserver form, e.g. "net:HOST:PORT~shs:BASE64KEY".
// An IPv6 host is written raw ("net:fe80::1:8008~shs:..."): multiserver
// parsers take the last ":"-field as the port. WebSocket addresses are
// written "ws://HOST:PORT~shs:KEY".
func (a Address) String() string {
	var b strings.Builder
	if a.Transport == TransportTunnel {
		b.WriteString("tunnel:")
		b.WriteString(a.Portal.String())
		b.WriteByte(':')
		b.WriteString(a.Key.String())
		b.WriteString("~shs:")
		b.WriteString(base64.StdEncoding.EncodeToString(a.Key[:]))
		return b.String()
	}
	switch a.Transport {
	case TransportWS, TransportWSS:
		b.WriteString(a.Transport + "://")
	case TransportOnion:
		b.WriteString("onion:")
	default:
		b.WriteString("net:")
	}
	b.WriteString(msEscape(a.Host))
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(a.Port))
	b.WriteString("~shs:")
	b.WriteString(base64.StdEncoding.EncodeToString(a.Key[:]))
	return b.String()
}

// DialAddr returns "host:port" for net.Dial (IPv6 hosts in brackets).
func (a Address) DialAddr() string { return net.JoinHostPort(a.Host, strconv.Itoa(a.Port)) }

// msEscape escapes the multiserver separators that may not appear raw in a
// data field (":" is left alone: hosts may be raw IPv6 addresses).
func msEscape(s string) string {
	if !strings.ContainsAny(s, "!~;") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '!' || c == '~' || c == ';' {
			b.WriteByte('!')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ParseAddress parses a peer address the way ssb-ref's parseAddress does:
//   - a multiserver address ("net:HOST:PORT~shs:KEY", alternatives separated
//     by ";"): the first alternative whose transport is net, ws, wss or onion
//     and whose first transform is shs is used; the port is the last
//     ":"-field of the transport, so raw IPv6 hosts work;
//   - the legacy form "HOST:PORT:@KEY.ed25519".
//
// Unlike ssb-ref it validates the legacy form too, requires an integer port
// in 1..65535 and an ed25519 key, and turns an empty host into "localhost".
func ParseAddress(s string) (Address, error) {
	a, err := parseAddress(s)
	if err != nil {
		return Address{}, fmt.Errorf("parse address %q: %w", truncate(s), err)
	}
	return a, nil
}

// ParseAddresses parses every usable alternative of a multiserver address
// ("addr1;addr2;...") or a single legacy address, in order. Alternatives
// that are not shs over net, ws, wss or onion, or that do not validate, are
// skipped; it fails only when none is usable.
func ParseAddresses(s string) ([]Address, error) {
	if !strings.Contains(s, "~") {
		a, err := ParseAddress(s)
		if err != nil {
			return nil, err
		}
		return []Address{a}, nil
	}
	alts, ok := decodeMultiserver(s)
	if !ok {
		return nil, fmt.Errorf("parse addresses %q: %w: not a multiserver address", truncate(s), ErrInvalidRef)
	}
	var out []Address
	for _, alt := range alts {
		if isTunnelAlternative(alt) {
			if a, err := tunnelAddress(alt); err == nil {
				out = append(out, a)
			}
			continue
		}
		if !isShsAlternative(alt) {
			continue
		}
		js := shsAlternative(alt)
		if !js.valid() {
			continue
		}
		if a, err := addressFromJS(js); err == nil {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("parse addresses %q: %w: no usable shs address", truncate(s), ErrInvalidRef)
	}
	return out, nil
}

func parseAddress(s string) (Address, error) {
	if strings.Contains(s, "~") {
		// The first alternative we understand decides: a tunnel, or an
		// shs address the way ssb-ref parses it.
		if alts, ok := decodeMultiserver(s); ok {
			for _, alt := range alts {
				if isTunnelAlternative(alt) {
					return tunnelAddress(alt)
				}
				if isShsAlternative(alt) {
					break
				}
			}
		}
		js, ok := parseMultiserverAddressJS(s)
		if !ok {
			return Address{}, fmt.Errorf("%w: not an shs multiserver address", ErrInvalidRef)
		}
		return addressFromJS(js)
	}
	host, port, id, ok := splitLegacyAddress(s)
	if !ok || !IsFeedID(id) || !isJSPort(port) || !isJSHost(host) {
		return Address{}, fmt.Errorf("%w: not HOST:PORT:@KEY.ed25519", ErrInvalidRef)
	}
	key, err := ParseFeedRef(id)
	if err != nil {
		return Address{}, err
	}
	p, err := usablePort(port)
	if err != nil {
		return Address{}, err
	}
	if host == "" {
		host = "localhost"
	}
	return Address{Host: host, Port: p, Key: key, Transport: TransportNet}, nil
}

// jsAddress is what ssb-ref's parseMultiServerAddress returns.
type jsAddress struct {
	transport string
	host      string // as ssb-ref spells it: "ws://example.org" for WebSockets
	port      float64
	key       string
}

// valid is ssb-ref's check of a parsed multiserver address.
func (js jsAddress) valid() bool {
	return isJSHost(js.host) && isJSPortNumber(js.port) && IsFeedID(js.key)
}

func addressFromJS(js jsAddress) (Address, error) {
	key, err := ParseFeedRef(js.key)
	if err != nil {
		return Address{}, err
	}
	p := js.port
	if p != math.Trunc(p) || p < 1 || p > 65535 {
		return Address{}, fmt.Errorf("%w: port %v out of range", ErrInvalidRef, p)
	}
	host := js.host
	if js.transport == TransportWS || js.transport == TransportWSS {
		host = strings.TrimPrefix(strings.TrimPrefix(host, js.transport+":"), "//")
	}
	if host == "" {
		host = "localhost"
	}
	return Address{Host: host, Port: int(p), Key: key, Transport: js.transport}, nil
}

func usablePort(s string) (int, error) {
	p, ok := JSNumber(s)
	if !ok || p != math.Trunc(p) || p < 1 || p > 65535 {
		return 0, fmt.Errorf("%w: port %q out of range", ErrInvalidRef, s)
	}
	return int(p), nil
}

// splitLegacyAddress splits "HOST:PORT:ID" the way ssb-ref does: the last
// field is the id, the one before it the port, the rest (re-joined) the host.
func splitLegacyAddress(s string) (host, port, id string, ok bool) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", "", "", false
	}
	id, rest := s[i+1:], s[:i]
	j := strings.LastIndexByte(rest, ':')
	if j < 0 {
		return "", rest, id, true
	}
	return rest[:j], rest[j+1:], id, true
}

// msProtocol is one protocol of a multiserver address: "name:data:data".
type msProtocol struct {
	name string
	data []string // unescaped
}

// decodeMultiserver parses a multiserver multi-address (grammar of
// ssbc/multiserver-address): alternatives separated by ";", protocols by
// "~", fields by ":"; "!" escapes one of "!~:;". It returns false exactly
// when multiserver-address's check() is false.
func decodeMultiserver(s string) ([][]msProtocol, bool) {
	var out [][]msProtocol
	var addr []msProtocol
	i := 0
	for {
		start := i
		for i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= '0' && s[i] <= '9' || s[i] == '-') {
			i++
		}
		name := s[start:i]
		if len(name) < 2 || name[0] < 'a' || name[0] > 'z' {
			return nil, false
		}
		p := msProtocol{name: name}
		for i < len(s) && s[i] == ':' {
			i++
			var b strings.Builder
		field:
			for i < len(s) {
				c := s[i]
				switch {
				case c == '!':
					if i+1 >= len(s) || strings.IndexByte("!~:;", s[i+1]) < 0 {
						return nil, false
					}
					b.WriteByte(s[i+1])
					i += 2
				case c >= '"' && c <= '9' || c >= '<' && c <= '}':
					b.WriteByte(c)
					i++
				default:
					break field
				}
			}
			p.data = append(p.data, b.String())
		}
		addr = append(addr, p)
		if i == len(s) {
			return append(out, addr), true
		}
		switch s[i] {
		case '~':
		case ';':
			out = append(out, addr)
			addr = nil
		default:
			return nil, false
		}
		i++
	}
}

// IsMultiServerAddress reports whether s is a multiserver address with a
// transport and at least one transform (ssb-ref's internal
// isMultiServerAddress: multiserver-address check() plus an unescaped "~").
func IsMultiServerAddress(s string) bool {
	if _, ok := decodeMultiserver(s); !ok {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] == '~' && s[i-1] != '!' {
			return true
		}
	}
	return false
}

func isShsAlternative(alt []msProtocol) bool {
	if len(alt) < 2 {
		return false
	}
	switch alt[0].name {
	case TransportNet, TransportWS, TransportWSS, TransportOnion:
	default:
		return false
	}
	return strings.HasPrefix(alt[1].name, "shs")
}

// isTunnelAlternative: "tunnel:..." followed by an shs transform.
func isTunnelAlternative(alt []msProtocol) bool {
	return len(alt) >= 2 && alt[0].name == TransportTunnel && alt[1].name == "shs"
}

// tunnelAddress validates "tunnel:@ROOM:@TARGET~shs:KEY": both ids are
// ed25519 feed ids, and KEY is the target's key.
func tunnelAddress(alt []msProtocol) (Address, error) {
	tr, shs := alt[0], alt[1]
	if len(tr.data) != 2 {
		return Address{}, fmt.Errorf("%w: want tunnel:@ROOM:@TARGET", ErrInvalidRef)
	}
	portal, err := ParseFeedRef(tr.data[0])
	if err != nil {
		return Address{}, fmt.Errorf("tunnel room: %w", err)
	}
	target, err := ParseFeedRef(tr.data[1])
	if err != nil {
		return Address{}, fmt.Errorf("tunnel target: %w", err)
	}
	if len(shs.data) != 1 {
		return Address{}, fmt.Errorf("%w: want ~shs:KEY after a tunnel", ErrInvalidRef)
	}
	key, err := base64.StdEncoding.Strict().DecodeString(shs.data[0])
	if err != nil || len(key) != len(target) || string(key) != string(target[:]) {
		return Address{}, fmt.Errorf("%w: the shs key of a tunnel must be the target's", ErrInvalidRef)
	}
	if portal == target {
		return Address{}, fmt.Errorf("%w: a tunnel to the room itself", ErrInvalidRef)
	}
	return Address{Key: target, Portal: portal, Transport: TransportTunnel}, nil
}

// shsAlternative builds ssb-ref's {host, port, key} from an alternative for
// which isShsAlternative holds, without validating it.
func shsAlternative(alt []msProtocol) jsAddress {
	tr := alt[0]
	js := jsAddress{transport: tr.name, port: math.NaN()}
	hostFields := tr.data
	if n := len(tr.data); n > 0 {
		// "last item always port, to handle ipv6"
		if p, ok := JSNumber(tr.data[n-1]); ok {
			js.port = p
		}
		hostFields = tr.data[:n-1]
	}
	js.host = strings.Join(hostFields, ":")
	if tr.name == TransportWS || tr.name == TransportWSS {
		js.host = tr.name + ":" + js.host
	}
	keyField := "undefined" // JS string concatenation of a missing field
	if len(alt[1].data) > 0 {
		keyField = alt[1].data[0]
	}
	js.key = "@" + keyField + ".ed25519"
	return js
}

// parseMultiserverAddressJS is ssb-ref's parseMultiServerAddress: the first
// shs alternative over net/ws/wss/onion, validated (host, port, key); it
// does not fall back to later alternatives when that one is invalid.
func parseMultiserverAddressJS(s string) (jsAddress, bool) {
	alts, ok := decodeMultiserver(s)
	if !ok {
		return jsAddress{}, false
	}
	for _, alt := range alts {
		if !isShsAlternative(alt) {
			continue
		}
		js := shsAlternative(alt)
		return js, js.valid()
	}
	return jsAddress{}, false
}

// IsAddress reports whether s is a peer address by ssb-ref's isAddress: a
// multiserver address with a transform, or the legacy "HOST:PORT:@KEY".
func IsAddress(s string) bool {
	if IsMultiServerAddress(s) {
		return true
	}
	host, port, id, ok := splitLegacyAddress(s)
	return ok && IsFeedID(id) && isJSPort(port) && isJSHost(host)
}

// IsMultiServerInvite reports whether s is a multiserver invite by ssb-ref
// (after cutting a "#redirect"): any address ssb-ref's
// parseMultiServerAddress understands, with or without an invite seed.
func IsMultiServerInvite(s string) bool {
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s = s[:i]
	}
	_, ok := parseMultiserverAddressJS(s)
	return ok
}

// IsLegacyInvite reports whether s is a legacy pub invite
// "HOST:PORT:@KEY.ed25519~SEED" (ssb-ref isLegacyInvite).
func IsLegacyInvite(s string) bool {
	s = cutJSRedirect(s)
	parts := strings.Split(s, "~")
	if len(parts) != 2 || !IsAddress(parts[0]) {
		return false
	}
	seed := parts[1]
	if len(seed) != 44 || seed[43] != '=' {
		return false
	}
	for i := 0; i < 43; i++ {
		if !b64Char(seed[i]) {
			return false
		}
	}
	return true
}

// IsInvite reports whether s is a legacy or multiserver invite (ssb-ref).
func IsInvite(s string) bool { return IsLegacyInvite(s) || IsMultiServerInvite(s) }

// cutJSRedirect applies JS s.replace(/#.*$/, ""): it removes from the first
// "#" after which no line terminator follows.
func cutJSRedirect(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] != '#' {
			continue
		}
		if !strings.ContainsFunc(s[i:], isJSLineTerminator) {
			return s[:i]
		}
	}
	return s
}

// isJSPort is ssb-ref's isPort(+s): JS Number(s) is an integer <= 65536.
func isJSPort(s string) bool {
	p, ok := JSNumber(s)
	return ok && isJSPortNumber(p)
}

func isJSPortNumber(p float64) bool {
	return !math.IsNaN(p) && !math.IsInf(p, 0) && p == math.Trunc(p) && p <= 65536
}

// JSNumber is JavaScript's Number(string) (ToNumber applied to a string):
// whitespace trimmed, "" is 0, 0x/0o/0b prefixes, Infinity. ok is false
// where JS gives NaN (the value is then NaN). ssb-ref and ssb-validate
// coerce strings this way.
func JSNumber(s string) (float64, bool) {
	s = strings.TrimFunc(s, isJSWhitespace)
	if s == "" {
		return 0, true
	}
	if len(s) > 2 && s[0] == '0' {
		base := 0
		switch s[1] {
		case 'x', 'X':
			base = 16
		case 'o', 'O':
			base = 8
		case 'b', 'B':
			base = 2
		}
		if base != 0 {
			var v float64
			for _, c := range s[2:] {
				d := digitValue(c)
				if d < 0 || d >= base {
					return math.NaN(), false
				}
				v = v*float64(base) + float64(d)
			}
			return v, true
		}
	}
	body := s
	if body[0] == '+' || body[0] == '-' {
		body = body[1:]
	}
	if body == "Infinity" {
		if s[0] == '-' {
			return math.Inf(-1), true
		}
		return math.Inf(1), true
	}
	if !isJSDecimalLiteral(body) {
		return math.NaN(), false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		// Only range errors remain; ParseFloat returns ±Inf or 0 then, as JS does.
		return v, true
	}
	return v, true
}

func digitValue(c rune) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10
	}
	return -1
}

// isJSDecimalLiteral matches StrUnsignedDecimalLiteral without Infinity:
// digits [. digits] or . digits, with an optional exponent.
func isJSDecimalLiteral(s string) bool {
	i, n := 0, 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
		n++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
	}
	if n == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	return i == len(s)
}

// isJSWhitespace is the set String.prototype.trim (and ToNumber) removes.
func isJSWhitespace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF:
		return true
	}
	return r >= 0x2000 && r <= 0x200A
}

// ipv6Format is the (loose) regular expression of the npm "ip" package's
// isV6Format, which ssb-ref uses. It is a constant table; it matches "" too.
var ipv6Format = regexp.MustCompile(`(?i)^(::)?(((\d{1,3}\.){3}(\d{1,3}){1})?([0-9a-f]){0,4}:{0,2}){1,8}(::)?$`)

// isJSIPv4 is the npm "ip" isV4Format: /^(\d{1,3}\.){3,3}\d{1,3}$/.
func isJSIPv4(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return false
	}
	for _, p := range parts {
		if len(p) < 1 || len(p) > 3 {
			return false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
		}
	}
	return true
}

// isJSHost is ssb-ref's isHost: after removing a "ws://" or "wss://" prefix,
// an IPv4 or IPv6 address (loose formats), a domain name, or "localhost".
func isJSHost(s string) bool {
	if strings.HasPrefix(s, "ws://") {
		s = s[len("ws://"):]
	} else if strings.HasPrefix(s, "wss://") {
		s = s[len("wss://"):]
	}
	return isJSIPv4(s) || ipv6Format.MatchString(s) || isJSDomain(s) || s == "localhost"
}

// isJSDomain is npm is-valid-domain (3.x) without options. Not reproduced:
// its table of second-level domains ("co.uk", ...), which only changes the
// answer for labels with "_" directly before such a suffix.
func isJSDomain(s string) bool {
	if strings.ContainsRune(s, '\u0130') { // JS lower-cases it to two characters, one not ASCII
		return false
	}
	v := strings.ToLower(s)
	v = strings.TrimSuffix(v, ".")
	if utf8.RuneCountInString(v) > 253 {
		return false
	}
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '*') {
			return false
		}
	}
	labels := strings.Split(v, ".")
	if len(labels) <= 1 {
		return false
	}
	tld := labels[len(labels)-1]
	labels = labels[:len(labels)-1]
	if !isJSTLD(tld) {
		return false
	}
	for i, l := range labels {
		last := i == len(labels)-1
		if l == "" || len(l) >= 64 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for j := 0; j < len(l); j++ {
			c := l[j]
			ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || (c == '_' && !last)
			if !ok {
				return false
			}
		}
		if strings.Count(l, "--") != strings.Count(l, "xn--") {
			return false
		}
	}
	return true
}

// isJSTLD is /^(?:xn--)?(?!^\d+$)[a-z0-9]+$/ on a lower-cased label.
func isJSTLD(t string) bool {
	alnum := func(s string) bool {
		if s == "" {
			return false
		}
		for i := 0; i < len(s); i++ {
			if !(s[i] >= 'a' && s[i] <= 'z' || s[i] >= '0' && s[i] <= '9') {
				return false
			}
		}
		return true
	}
	if rest, ok := strings.CutPrefix(t, "xn--"); ok && alnum(rest) {
		return true
	}
	if !alnum(t) {
		return false
	}
	return strings.ContainsFunc(t, func(r rune) bool { return r < '0' || r > '9' })
}
