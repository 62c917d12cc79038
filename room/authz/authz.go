// Package authz is the room's one authorization layer: it decides who may
// do what, per role and privacy mode (protocol.md §8.2). The muxrpc
// handlers (plugins/room), the operator's admin socket (room/admin.go) and
// the web dashboard (room/web) all ask it, so a member can do the same
// things whichever way they come.
//
// It only decides: it never reads the database or the network. Callers
// look up the actor's role and the mode and pass them in.
package authz

import (
	"errors"
	"fmt"

	"github.com/cask-ssb/cask/room/roomdb"
)

// Actor is who asks.
type Actor struct {
	// Operator is whoever holds the room's unix socket: may do anything.
	Operator bool
	// Role is the actor's role; "" for a non-member.
	Role roomdb.Role
	// Denied says the actor's key is on the denied list.
	Denied bool
}

// Operator is the room's operator (the admin socket).
var Operator = Actor{Operator: true}

// Member reports whether the actor is a member (any role).
func (a Actor) Member() bool { return a.Role != "" }

// Action is something an actor may be allowed to do.
type Action string

// Actions of peers over muxrpc.
const (
	Session     Action = "session"      // get a muxrpc session at all
	Enumerate   Action = "enumerate"    // see or join the attendant list, list members
	ListAliases Action = "list-aliases" // read aliases (room.listAliases, alias pages)
	EditAliases Action = "edit-aliases" // register or revoke one's own aliases
	SignIn      Action = "sign-in"      // sign in to the web dashboard with SSB
)

// Actions on the web dashboard (and the admin socket).
const (
	ViewDashboard  Action = "view-dashboard" // the overview, attendants, members list, aliases
	CreateInvite   Action = "create-invite"  // make an invite (mode rules)
	ManageInvites  Action = "manage-invites" // see and revoke every invite (one's own: always)
	RevokeAnyAlias Action = "revoke-any-alias"
	AddMember      Action = "add-member"
	RemoveMember   Action = "remove-member" // see RemoveTarget for whom
	ChangeRole     Action = "change-role"
	ManageDenied   Action = "manage-denied" // see, add and remove denied keys
	SetMode        Action = "set-mode"
	EditLanding    Action = "edit-landing" // the landing page text
)

// Errors; their texts are what peers and browsers see.
var (
	ErrDenied      = errors.New("this key is denied access to the room")
	ErrRestricted  = errors.New("access restricted to members")
	ErrEnumerate   = errors.New("external users are not allowed to enumerate members")
	ErrAliasesOff  = errors.New("aliases are disabled in restricted mode")
	ErrMembersOnly = errors.New("only members can register aliases")
	// ErrForbidden is wrapped by every other refusal.
	ErrForbidden = errors.New("not allowed")
)

func forbid(a Actor, act Action, why string) error {
	who := "a non-member"
	if a.Role != "" {
		who = "a " + string(a.Role)
	}
	return fmt.Errorf("%w: %s may not %s%s", ErrForbidden, who, act, why)
}

// Can says whether a may do act in mode; nil means yes.
func Can(a Actor, mode roomdb.Mode, act Action) error {
	if a.Operator {
		return nil
	}
	if a.Denied {
		return ErrDenied
	}
	switch act {
	case Session:
		if mode == roomdb.ModeRestricted && !a.Member() {
			return ErrRestricted
		}
		return nil
	case Enumerate:
		if mode == roomdb.ModeOpen || a.Member() {
			return nil
		}
		return ErrEnumerate
	case ListAliases:
		if mode != roomdb.ModeRestricted || a.Member() {
			return nil
		}
		return ErrEnumerate
	case EditAliases:
		if mode == roomdb.ModeRestricted {
			return ErrAliasesOff
		}
		if !a.Member() {
			return ErrMembersOnly
		}
		return nil
	case SignIn, ViewDashboard:
		if a.Member() {
			return nil
		}
		return forbid(a, act, ": sign-in is for members")
	case CreateInvite:
		switch mode {
		case roomdb.ModeOpen:
			return nil // the open invite is public anyway
		case roomdb.ModeCommunity:
			if a.Member() {
				return nil
			}
		case roomdb.ModeRestricted:
			if a.Role == roomdb.RoleAdmin || a.Role == roomdb.RoleModerator {
				return nil
			}
			return forbid(a, act, " in restricted mode (admins and moderators only)")
		}
		return forbid(a, act, "")
	case ManageInvites, RevokeAnyAlias, AddMember, RemoveMember, ManageDenied:
		if a.Role == roomdb.RoleAdmin || a.Role == roomdb.RoleModerator {
			return nil
		}
		return forbid(a, act, " (admins and moderators only)")
	case ChangeRole, SetMode, EditLanding:
		if a.Role == roomdb.RoleAdmin {
			return nil
		}
		return forbid(a, act, " (admins only)")
	}
	return fmt.Errorf("%w: unknown action %q", ErrForbidden, act)
}

// CanRemove says whether a may remove a member whose role is target: a
// moderator may remove members only, an admin anyone.
func CanRemove(a Actor, mode roomdb.Mode, target roomdb.Role) error {
	if err := Can(a, mode, RemoveMember); err != nil {
		return err
	}
	if a.Operator || a.Role == roomdb.RoleAdmin || target == roomdb.RoleMember {
		return nil
	}
	return forbid(a, RemoveMember, " who is a "+string(target)+" (admins only)")
}
