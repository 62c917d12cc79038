package sbot

import (
	"context"
	"fmt"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/httpauth"
	"github.com/cask-ssb/cask/plugins/service"
)

// Sign-in with SSB on the web pages of rooms (protocol.md §8.9): rooms we
// joined may ask us for a solution (client-initiated sign-in, answered
// with our key), and the owner answers a server-initiated sign-in with
// `sbot room signin LINK` or signs out with `sbot room signout ROOMID`.

func (rc *roomClient) httpAuthService() service.Service {
	return httpauth.ClientService(httpauth.ClientOptions{Keys: rc.n.keys, IsRoom: rc.isRoom, Room: rc.authEndpoint})
}

// authEndpoint returns the connection with room sid, dialling the address
// of the sign-in link if we are not connected.
func (rc *roomClient) authEndpoint(ctx context.Context, sid feeds.FeedRef, msaddr string) (*muxrpc.Endpoint, error) {
	if c := rc.n.conns.peer(sid); c != nil {
		return c.e, nil
	}
	if msaddr == "" {
		return nil, fmt.Errorf("not connected to room %s: join it first (sbot room join ADDR)", sid)
	}
	a, err := parseRoomAddress(msaddr)
	if err != nil {
		return nil, fmt.Errorf("multiserverAddress: %w", err)
	}
	if a.Key != sid {
		return nil, fmt.Errorf("multiserverAddress %s is not the address of room %s", msaddr, sid)
	}
	c, err := rc.n.conns.dial(ctx, a)
	if err != nil {
		return nil, fmt.Errorf("connect to room %s: %w", sid, err)
	}
	return c.e, nil
}
