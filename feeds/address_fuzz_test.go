package feeds

import (
	"net/netip"
	"testing"
)

// FuzzAddressString builds the addresses a listener advertises (an IP as
// net.IP.String or netip.Addr.String writes it, any port, net/ws/wss) and
// checks that String parses back to the same address: "net:" + raw IPv6
// host, the port last, as multiserver's net plugin writes them.
func FuzzAddressString(f *testing.F) {
	for _, s := range []struct {
		ip   []byte
		port uint16
	}{
		{[]byte{127, 0, 0, 1}, 8008},
		{make([]byte, 16), 8008}, // "::"
		{append(make([]byte, 15), 1), 1},
		{[]byte{0xfe, 0x80, 15: 1}, 65535},
		{[]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1}, 80},
	} {
		f.Add(s.ip, s.port, uint8(0))
	}
	key, err := ParseFeedRef("@" + aliceB64 + ".ed25519")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, ip []byte, port uint16, tr uint8) {
		addr, ok := netip.AddrFromSlice(ip)
		if !ok || port == 0 {
			return
		}
		transport := []string{TransportNet, TransportWS, TransportWSS}[int(tr)%3]
		a := Address{Host: addr.Unmap().String(), Port: int(port), Key: key, Transport: transport}
		back, err := ParseAddress(a.String())
		if err != nil || back != a {
			t.Fatalf("%+v -> %q -> %+v, %v", a, a.String(), back, err)
		}
		if got, err := netip.ParseAddrPort(a.DialAddr()); err != nil || got.Addr() != addr.Unmap() || got.Port() != port {
			t.Fatalf("DialAddr %q of %+v: %v, %v", a.DialAddr(), a, got, err)
		}
	})
}
