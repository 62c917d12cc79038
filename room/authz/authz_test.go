package authz

import (
	"errors"
	"testing"

	"github.com/cask-ssb/cask/room/roomdb"
)

func TestCan(t *testing.T) {
	var (
		none  = Actor{}
		mem   = Actor{Role: roomdb.RoleMember}
		mod   = Actor{Role: roomdb.RoleModerator}
		adm   = Actor{Role: roomdb.RoleAdmin}
		deny  = Actor{Role: roomdb.RoleAdmin, Denied: true}
		open  = roomdb.ModeOpen
		comm  = roomdb.ModeCommunity
		restr = roomdb.ModeRestricted
	)
	for _, c := range []struct {
		who  Actor
		mode roomdb.Mode
		act  Action
		want error // nil: allowed
	}{
		// sessions (protocol.md §8.2)
		{none, open, Session, nil}, {none, comm, Session, nil}, {none, restr, Session, ErrRestricted},
		{mem, restr, Session, nil}, {deny, open, Session, ErrDenied}, {deny, restr, Enumerate, ErrDenied},
		// enumerate attendants and members
		{none, open, Enumerate, nil}, {none, comm, Enumerate, ErrEnumerate}, {mem, comm, Enumerate, nil}, {mem, restr, Enumerate, nil},
		// aliases
		{none, comm, ListAliases, nil}, {none, restr, ListAliases, ErrEnumerate}, {mem, restr, ListAliases, nil},
		{none, open, EditAliases, ErrMembersOnly}, {mem, comm, EditAliases, nil}, {adm, restr, EditAliases, ErrAliasesOff},
		// invites per mode
		{none, open, CreateInvite, nil}, {mem, open, CreateInvite, nil},
		{none, comm, CreateInvite, ErrForbidden}, {mem, comm, CreateInvite, nil}, {mod, comm, CreateInvite, nil}, {adm, comm, CreateInvite, nil},
		{none, restr, CreateInvite, ErrForbidden}, {mem, restr, CreateInvite, ErrForbidden}, {mod, restr, CreateInvite, nil}, {adm, restr, CreateInvite, nil},
		// dashboard
		{none, open, SignIn, ErrForbidden}, {mem, restr, SignIn, nil}, {mem, comm, ViewDashboard, nil},
		{mem, comm, ManageInvites, ErrForbidden}, {mod, comm, ManageInvites, nil},
		{mem, open, ManageDenied, ErrForbidden}, {mod, open, ManageDenied, nil},
		{mem, comm, RevokeAnyAlias, ErrForbidden}, {mod, comm, RevokeAnyAlias, nil},
		{mod, comm, ChangeRole, ErrForbidden}, {adm, comm, ChangeRole, nil},
		{mod, comm, SetMode, ErrForbidden}, {adm, restr, SetMode, nil},
		{mod, comm, EditLanding, ErrForbidden}, {adm, comm, EditLanding, nil},
		// the operator may do anything
		{Operator, restr, SetMode, nil}, {Operator, restr, EditAliases, nil},
		{adm, comm, Action("fly"), ErrForbidden},
	} {
		err := Can(c.who, c.mode, c.act)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("Can(%+v, %s, %s) = %v, want %v", c.who, c.mode, c.act, err, c.want)
		}
	}
}

func TestCanRemove(t *testing.T) {
	for _, c := range []struct {
		who    Actor
		target roomdb.Role
		ok     bool
	}{
		{Actor{Role: roomdb.RoleMember}, roomdb.RoleMember, false},
		{Actor{Role: roomdb.RoleModerator}, roomdb.RoleMember, true},
		{Actor{Role: roomdb.RoleModerator}, roomdb.RoleModerator, false},
		{Actor{Role: roomdb.RoleModerator}, roomdb.RoleAdmin, false},
		{Actor{Role: roomdb.RoleAdmin}, roomdb.RoleAdmin, true},
		{Operator, roomdb.RoleAdmin, true},
	} {
		if err := CanRemove(c.who, roomdb.ModeCommunity, c.target); (err == nil) != c.ok {
			t.Errorf("CanRemove(%s, %s) = %v, want ok=%v", c.who.Role, c.target, err, c.ok)
		}
	}
}
