package room

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/muxrpc"
	"github.com/cask-ssb/cask/room/authz"
	"github.com/cask-ssb/cask/room/roomdb"
)

// Admin methods, served only on the owner-only unix socket (no
// handshake: whoever can open REPO/socket is the operator).
func (s *Server) adminServices() *muxrpc.Mux {
	m := muxrpc.NewMux()
	// Every call goes through room/authz as the operator (who may do
	// anything), the same layer the web dashboard and the peers' calls use.
	acts := map[string]authz.Action{
		"status": authz.ViewDashboard, "address": authz.ViewDashboard, "members.list": authz.ViewDashboard,
		"members.add": authz.AddMember, "members.role": authz.ChangeRole, "members.remove": authz.RemoveMember,
		"invites.create": authz.CreateInvite, "invites.list": authz.ManageInvites, "invites.revoke": authz.ManageInvites,
		"aliases.list": authz.ViewDashboard, "aliases.revoke": authz.RevokeAnyAlias,
		"deny.add": authz.ManageDenied, "deny.remove": authz.ManageDenied, "deny.list": authz.ManageDenied,
		"mode.get": authz.ViewDashboard, "mode.set": authz.SetMode,
		"drain": authz.SetMode, // changes whom the node takes, as the mode does
	}
	reg := func(name string, f func(ctx context.Context, req *muxrpc.Request) (any, error)) {
		act, ok := acts[name]
		if !ok {
			panic("admin." + name + ": no authz action") // programming error
		}
		m.RegisterAsync(muxrpc.ParseMethod("admin."+name), func(ctx context.Context, req *muxrpc.Request) (any, error) {
			mode, err := s.db.Mode(ctx)
			if err != nil {
				return nil, err
			}
			if err := authz.Can(authz.Operator, mode, act); err != nil {
				return nil, err
			}
			return f(ctx, req)
		})
	}
	reg("status", func(ctx context.Context, _ *muxrpc.Request) (any, error) { return s.Status(ctx) })
	reg("address", func(context.Context, *muxrpc.Request) (any, error) { return s.Address(), nil })
	reg("drain", func(_ context.Context, req *muxrpc.Request) (any, error) {
		perSecond, cancel, err := drainArgs(req)
		if err != nil {
			return nil, err
		}
		if cancel {
			return s.Undrain(), nil
		}
		return s.Drain(perSecond), nil
	})

	reg("members.list", func(ctx context.Context, _ *muxrpc.Request) (any, error) { return s.db.Members(ctx) })
	reg("members.add", func(ctx context.Context, req *muxrpc.Request) (any, error) {
		id, role, err := idRoleArgs(req)
		if err != nil {
			return nil, err
		}
		if err := s.db.AddMember(ctx, id, role); err != nil {
			return nil, err
		}
		s.log.Info("member added", "id", id.String(), "role", string(role))
		return map[string]string{"id": id.String(), "role": string(role)}, nil
	})
	reg("members.role", func(ctx context.Context, req *muxrpc.Request) (any, error) {
		id, role, err := idRoleArgs(req)
		if err != nil {
			return nil, err
		}
		if err := s.db.SetRole(ctx, id, role); err != nil {
			return nil, err
		}
		return map[string]string{"id": id.String(), "role": string(role)}, nil
	})
	reg("members.remove", func(ctx context.Context, req *muxrpc.Request) (any, error) {
		id, err := idArg(req, 0)
		if err != nil {
			return nil, err
		}
		if err := s.db.RemoveMember(ctx, id); err != nil {
			return nil, err
		}
		s.enforce(ctx)
		return map[string]string{"removed": id.String()}, nil
	})

	reg("invites.create", func(ctx context.Context, req *muxrpc.Request) (any, error) {
		var opts struct {
			Uses    int    `json:"uses"`
			Expires string `json:"expires"`
		}
		if err := req.Arg(0, &opts); err != nil {
			return nil, err
		}
		if opts.Uses == 0 {
			opts.Uses = 1
		}
		ttl := 7 * 24 * time.Hour
		if opts.Expires != "" {
			d, err := time.ParseDuration(opts.Expires)
			if err != nil {
				return nil, fmt.Errorf("expires %q: %w", opts.Expires, err)
			}
			ttl = d
		}
		code, inv, err := s.db.CreateInvite(ctx, nil, opts.Uses, ttl)
		if err != nil {
			return nil, err
		}
		return map[string]any{"code": code, "url": InviteURL(s.cfg.Domain, code), "id": inv.ID, "uses": inv.Uses, "expires": inv.Expires}, nil
	})
	reg("invites.list", func(ctx context.Context, _ *muxrpc.Request) (any, error) { return s.db.Invites(ctx) })
	reg("invites.revoke", func(ctx context.Context, req *muxrpc.Request) (any, error) {
		var id int64
		if err := req.Arg(0, &id); err != nil {
			return nil, err
		}
		if err := s.db.RevokeInvite(ctx, id); err != nil {
			return nil, err
		}
		return map[string]int64{"revoked": id}, nil
	})

	reg("aliases.list", func(ctx context.Context, _ *muxrpc.Request) (any, error) { return s.db.Aliases(ctx, nil) })
	reg("aliases.revoke", func(ctx context.Context, req *muxrpc.Request) (any, error) {
		var name string
		if err := req.Arg(0, &name); err != nil {
			return nil, err
		}
		if err := s.db.RevokeAlias(ctx, name, nil); err != nil {
			return nil, err
		}
		return map[string]string{"revoked": name}, nil
	})

	reg("deny.add", func(ctx context.Context, req *muxrpc.Request) (any, error) {
		id, err := idArg(req, 0)
		if err != nil {
			return nil, err
		}
		var comment string
		_ = req.Arg(1, &comment)
		if err := s.db.Deny(ctx, id, comment); err != nil {
			return nil, err
		}
		s.enforce(ctx)
		return map[string]string{"denied": id.String()}, nil
	})
	reg("deny.remove", func(ctx context.Context, req *muxrpc.Request) (any, error) {
		id, err := idArg(req, 0)
		if err != nil {
			return nil, err
		}
		if err := s.db.Undeny(ctx, id); err != nil {
			return nil, err
		}
		return map[string]string{"allowed": id.String()}, nil
	})
	reg("deny.list", func(ctx context.Context, _ *muxrpc.Request) (any, error) { return s.db.DeniedKeys(ctx) })

	reg("mode.get", func(ctx context.Context, _ *muxrpc.Request) (any, error) {
		m, err := s.db.Mode(ctx)
		return map[string]string{"mode": string(m)}, err
	})
	reg("mode.set", func(ctx context.Context, req *muxrpc.Request) (any, error) {
		var ms string
		if err := req.Arg(0, &ms); err != nil {
			return nil, err
		}
		m, err := roomdb.ParseMode(ms)
		if err != nil {
			return nil, err
		}
		if err := s.db.SetMode(ctx, m); err != nil {
			return nil, err
		}
		s.log.Info("mode changed", "mode", string(m))
		s.enforce(ctx)
		return map[string]string{"mode": string(m)}, nil
	})
	return m
}

// InviteURL is the web link of an invite (SSB HTTP Invites).
func InviteURL(domain, code string) string {
	return "https://" + domain + "/join?invite=" + url.QueryEscape(code)
}

func idArg(req *muxrpc.Request, i int) (feeds.FeedRef, error) {
	var s string
	if err := req.Arg(i, &s); err != nil {
		return feeds.FeedRef{}, err
	}
	return feeds.ParseFeedRef(s)
}

func idRoleArgs(req *muxrpc.Request) (feeds.FeedRef, roomdb.Role, error) {
	id, err := idArg(req, 0)
	if err != nil {
		return id, "", err
	}
	var rs string
	if err := req.Arg(1, &rs); err != nil {
		if len(req.Args) > 0 {
			var args []json.RawMessage
			if json.Unmarshal(req.Args, &args) == nil && len(args) < 2 {
				return id, roomdb.RoleMember, nil
			}
		}
		return id, "", err
	}
	r, err := roomdb.ParseRole(rs)
	return id, r, err
}
