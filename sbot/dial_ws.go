package sbot

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/internal/wsconn"
	"github.com/cask-ssb/cask/secretstream"
)

// dialWS dials ws:// and wss:// addresses (protocol.md §7.2): a WebSocket
// whose binary messages carry the byte stream, then the client handshake
// inside it as over TCP. The TCP connection goes through n.network.
func (n *Node) dialWS(ctx context.Context, a feeds.Address) (net.Conn, ed25519.PublicKey, error) {
	u := wsURL(a)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return n.network.DialContext(ctx, addr)
		},
		ForceAttemptHTTP2: false,
	}
	defer tr.CloseIdleConnections()
	raw, err := wsconn.Dial(ctx, u, &http.Client{Transport: tr})
	if err != nil {
		return nil, nil, err
	}
	sc, err := secretstream.Client(ctx, raw, secretstream.AppKey(n.caps), n.keys.Private, a.Key.PublicKey())
	if err != nil {
		raw.Close()
		return nil, nil, fmt.Errorf("handshake with %s: %w", u, err)
	}
	return sc, sc.RemoteKey(), nil
}

// wsURL is the URL of a ws or wss address; the default port is omitted.
func wsURL(a feeds.Address) string {
	scheme := "ws"
	if a.Transport == feeds.TransportWSS {
		scheme = "wss"
	}
	host := a.Host
	if a.Port != 0 && !(scheme == "ws" && a.Port == 80) && !(scheme == "wss" && a.Port == 443) {
		host = net.JoinHostPort(a.Host, strconv.Itoa(a.Port))
	} else if ip := net.ParseIP(a.Host); ip != nil && ip.To4() == nil {
		host = "[" + a.Host + "]"
	}
	return (&url.URL{Scheme: scheme, Host: host, Path: "/"}).String()
}
