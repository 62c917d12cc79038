package sbot

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/plugins/service"
)

// Aliases in rooms (protocol.md §8.7): the owner registers, revokes and
// lists the aliases of our feed in a room we joined. The registration is
// signed here, with our key, over
// "=room-alias-registration:ROOMID:OURID:ALIAS".

// aliasPayload is the text a registration signs.
func aliasPayload(room, user feeds.FeedRef, alias string) []byte {
	return []byte("=room-alias-registration:" + room.String() + ":" + user.String() + ":" + alias)
}

// aliasMethods are the owner's alias calls.
func (rc *roomClient) aliasMethods() []service.Method {
	return []service.Method{
		service.Async("roomClient.registerAlias", service.Owner, func(ctx context.Context, req *muxrpc.Request) (any, error) {
			e, room, alias, err := rc.aliasArgs(req)
			if err != nil {
				return nil, err
			}
			kp := rc.n.keys
			sig := base64.StdEncoding.EncodeToString(kp.Sign(aliasPayload(room, kp.ID, alias))) + ".sig.ed25519"
			var url string
			if err := e.Async(ctx, &url, muxrpc.Method{"room", "registerAlias"}, alias, sig); err != nil {
				return nil, fmt.Errorf("register alias %q in %s: %w", alias, room, err)
			}
			return map[string]string{"alias": alias, "room": room.String(), "url": url}, nil
		}),
		service.Async("roomClient.revokeAlias", service.Owner, func(ctx context.Context, req *muxrpc.Request) (any, error) {
			e, room, alias, err := rc.aliasArgs(req)
			if err != nil {
				return nil, err
			}
			if err := e.Async(ctx, nil, muxrpc.Method{"room", "revokeAlias"}, alias); err != nil {
				return nil, fmt.Errorf("revoke alias %q in %s: %w", alias, room, err)
			}
			return map[string]any{"alias": alias, "room": room.String(), "revoked": true}, nil
		}),
		service.Async("roomClient.listAliases", service.Owner, func(ctx context.Context, req *muxrpc.Request) (any, error) {
			var args struct {
				Room string `json:"room"`
			}
			if err := req.Arg(0, &args); err != nil {
				return nil, fmt.Errorf("list aliases: want {room}: %w", err)
			}
			e, room, err := rc.roomEndpoint(args.Room)
			if err != nil {
				return nil, err
			}
			var names []string
			if err := e.Async(ctx, &names, muxrpc.Method{"room", "listAliases"}, rc.n.keys.ID.String()); err != nil {
				return nil, fmt.Errorf("list aliases in %s: %w", room, err)
			}
			if names == nil {
				names = []string{}
			}
			return map[string]any{"room": room.String(), "aliases": names}, nil
		}),
	}
}

// aliasArgs reads {room, alias} and finds the room's connection.
func (rc *roomClient) aliasArgs(req *muxrpc.Request) (*muxrpc.Endpoint, feeds.FeedRef, string, error) {
	var args struct {
		Room  string `json:"room"`
		Alias string `json:"alias"`
	}
	if err := req.Arg(0, &args); err != nil || args.Alias == "" {
		return nil, feeds.FeedRef{}, "", fmt.Errorf("%s: want {room, alias}", req.Method)
	}
	e, room, err := rc.roomEndpoint(args.Room)
	return e, room, args.Alias, err
}

// roomEndpoint finds the connection with a joined room named by its id or
// address.
func (rc *roomClient) roomEndpoint(s string) (*muxrpc.Endpoint, feeds.FeedRef, error) {
	var id feeds.FeedRef
	var err error
	if strings.HasPrefix(s, "@") {
		id, err = feeds.ParseFeedRef(s)
	} else {
		var a feeds.Address
		a, err = parseRoomAddress(s)
		id = a.Key
	}
	if err != nil {
		return nil, id, fmt.Errorf("room %q: want a room id or address: %w", s, err)
	}
	if !rc.isRoom(id) {
		return nil, id, fmt.Errorf("room %s: not a room we joined (sbot room join ADDR)", id)
	}
	c := rc.n.conns.peer(id)
	if c == nil {
		return nil, id, fmt.Errorf("room %s: not connected now", id)
	}
	return c.e, id, nil
}
