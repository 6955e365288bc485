package chat

import (
	"context"
	"errors"
	"slices"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"

	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage"
)

const maxTitleChars = 128

// memberOf returns the user's membership (active or past), telling an
// unknown conversation from one the user is not in.
func (s *Service) memberOf(ctx context.Context, convID, user string) (storage.Member, error) {
	if !validConvID(convID) {
		return storage.Member{}, protocol.Errorf(protocol.CodeBadRequest, "conv: invalid conversation id")
	}
	m, err := s.store.GetMember(ctx, convID, user)
	if errors.Is(err, storage.ErrNotMember) {
		if _, cerr := s.store.GetConversation(ctx, convID); errors.Is(cerr, storage.ErrNotFound) {
			err = cerr
		}
	}
	if err != nil {
		return storage.Member{}, s.convError(err, convID)
	}
	return m, nil
}

// activeMemberOf is memberOf for operations that need a current member.
func (s *Service) activeMemberOf(ctx context.Context, convID, user string) (storage.Member, error) {
	m, err := s.memberOf(ctx, convID, user)
	if err == nil && !m.Active() {
		err = s.convError(storage.ErrNotMember, convID)
	}
	return m, err
}

// conversation returns a conversation with its active members.
func (s *Service) conversation(ctx context.Context, convID string) (protocol.Conversation, error) {
	c, err := s.store.GetConversation(ctx, convID)
	if err != nil {
		return protocol.Conversation{}, s.convError(err, convID)
	}
	ms, err := s.store.ActiveMembers(ctx, convID)
	if err != nil {
		return protocol.Conversation{}, s.storeError("conversation", err)
	}
	return wireConversation(c, ms), nil
}

func (s *Service) direct(ctx context.Context, me, other string) (storage.Conversation, error) {
	if !protocol.ValidID(other) {
		return storage.Conversation{}, protocol.Errorf(protocol.CodeBadRequest, "invalid user id %q", other)
	}
	if other == me {
		return storage.Conversation{}, protocol.Errorf(protocol.CodeBadRequest, "a direct conversation needs another user")
	}
	c, _, err := s.store.DirectConversation(ctx, me, other, ulid.Make().String(), s.cfg.Now())
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Conversation{}, protocol.Errorf(protocol.CodeNotFound, "user %s does not exist", other)
	}
	if err != nil {
		return storage.Conversation{}, s.storeError("direct", err)
	}
	return c, nil
}

// Direct returns (creating on first use) the direct conversation with user.
func (s *Service) Direct(ctx context.Context, dev Device, user string) (protocol.Conversation, error) {
	c, err := s.direct(ctx, dev.User, user)
	if err != nil {
		return protocol.Conversation{}, err
	}
	return s.conversation(ctx, c.ID)
}

// Conversation returns a conversation the user is or was a member of. A
// past member sees it as it was when they left: no member list, and the
// last seq they could see.
func (s *Service) Conversation(ctx context.Context, dev Device, convID string) (protocol.Conversation, error) {
	m, err := s.memberOf(ctx, convID, dev.User)
	if err != nil {
		return protocol.Conversation{}, err
	}
	if m.Active() {
		return s.conversation(ctx, convID)
	}
	c, err := s.store.GetConversation(ctx, convID)
	if err != nil {
		return protocol.Conversation{}, s.convError(err, convID)
	}
	c.LastSeq = min(c.LastSeq, m.UntilSeq)
	return wireConversation(c, nil), nil
}

// Conversations lists the user's conversations, most recently active first.
func (s *Service) Conversations(ctx context.Context, dev Device, limit int) ([]protocol.Conversation, error) {
	limit, err := pageLimit(limit)
	if err != nil {
		return nil, err
	}
	cs, err := s.store.UserConversations(ctx, dev.User, limit)
	if err != nil {
		return nil, s.storeError("conversations", err)
	}
	unread, err := s.store.Unread(ctx, dev.User)
	if err != nil {
		return nil, s.storeError("conversations", err)
	}
	byConv := make(map[string]storage.Unread, len(unread))
	for _, u := range unread {
		byConv[u.ConvID] = u
	}
	out := make([]protocol.Conversation, len(cs))
	for i, c := range cs {
		out[i] = wireConversation(c, nil)
		if u, ok := byConv[c.ID]; ok {
			out[i].Read, out[i].Unread = u.Read, u.LastSeq-u.Read
		} else {
			out[i].Read = c.LastSeq // nothing unread: read up to the end
		}
	}
	return out, nil
}

// CreateGroup creates a group owned by the caller.
func (s *Service) CreateGroup(ctx context.Context, dev Device, title string, members []string) (protocol.Conversation, error) {
	if title == "" || utf8.RuneCountInString(title) > maxTitleChars || !utf8.ValidString(title) {
		return protocol.Conversation{}, protocol.Errorf(protocol.CodeBadRequest, "title: 1-%d characters of UTF-8 required", maxTitleChars)
	}
	others := make([]string, 0, len(members))
	for _, u := range members {
		if !protocol.ValidID(u) {
			return protocol.Conversation{}, protocol.Errorf(protocol.CodeBadRequest, "members: invalid user id %q", u)
		}
		if u != dev.User && !slices.Contains(others, u) {
			others = append(others, u)
		}
	}
	if len(others)+1 > s.cfg.MaxMembers {
		return protocol.Conversation{}, protocol.Errorf(protocol.CodeGroupFull, "a group holds at most %d members", s.cfg.MaxMembers)
	}
	now := s.cfg.Now()
	conv := storage.Conversation{ID: ulid.Make().String(), Kind: storage.KindGroup, Title: title, CreatedBy: dev.User, CreatedAt: now}
	note, err := s.note(dev, conv.ID, protocol.Body{Type: protocol.BodySystem, Event: protocol.SysGroupCreated, By: dev.User, Title: title})
	if err != nil {
		return protocol.Conversation{}, err
	}
	_, msg, err := s.store.CreateGroup(ctx, conv, others, s.cfg.MaxMembers, note)
	if errors.Is(err, storage.ErrNotFound) {
		return protocol.Conversation{}, protocol.Errorf(protocol.CodeNotFound, "a member does not exist")
	}
	if err != nil {
		return protocol.Conversation{}, s.convError(err, conv.ID)
	}
	s.fanout.enqueueWith(msg)
	return s.conversation(ctx, conv.ID)
}

// note builds a system message from the acting device.
func (s *Service) note(dev Device, convID string, body protocol.Body) (storage.NewMessage, error) {
	b, err := encodeBody(body)
	if err != nil {
		return storage.NewMessage{}, err
	}
	id := ulid.Make().String()
	return storage.NewMessage{
		ConvID: convID, ID: id, SenderID: dev.User, SenderDevice: dev.Device,
		ClientMsgID: "sys-" + id, Kind: storage.MsgSystem, Body: b, CreatedAt: s.cfg.Now(),
	}, nil
}

func validRole(r string, dflt storage.Role) (storage.Role, error) {
	switch storage.Role(r) {
	case "":
		return dflt, nil
	case storage.RoleAdmin, storage.RoleMember:
		return storage.Role(r), nil
	}
	return "", protocol.Errorf(protocol.CodeBadRequest, "role must be admin or member")
}

// AddMember adds user to a group. Owners and admins add members; only the
// owner adds admins.
func (s *Service) AddMember(ctx context.Context, dev Device, convID, user, role string) (protocol.Conversation, error) {
	r, err := validRole(role, storage.RoleMember)
	if err != nil {
		return protocol.Conversation{}, err
	}
	if !protocol.ValidID(user) {
		return protocol.Conversation{}, protocol.Errorf(protocol.CodeBadRequest, "invalid user id %q", user)
	}
	me, err := s.activeMemberOf(ctx, convID, dev.User)
	if err != nil {
		return protocol.Conversation{}, err
	}
	if me.Role == storage.RoleMember || (r == storage.RoleAdmin && me.Role != storage.RoleOwner) {
		return protocol.Conversation{}, protocol.Errorf(protocol.CodeForbidden, "your role (%s) cannot add a %s", me.Role, r)
	}
	note, err := s.note(dev, convID, protocol.Body{Type: protocol.BodySystem, Event: protocol.SysMemberAdded, User: user, By: dev.User, Role: string(r)})
	if err != nil {
		return protocol.Conversation{}, err
	}
	msg, err := s.store.AddMember(ctx, convID, user, r, s.cfg.MaxMembers, note)
	if errors.Is(err, storage.ErrNotFound) {
		return protocol.Conversation{}, protocol.Errorf(protocol.CodeNotFound, "user %s does not exist", user)
	}
	if err != nil {
		return protocol.Conversation{}, s.convError(err, convID)
	}
	s.fanout.enqueueWith(msg)
	return s.conversation(ctx, convID)
}

// RemoveMember removes user from a group: the owner removes anyone else,
// admins remove plain members.
func (s *Service) RemoveMember(ctx context.Context, dev Device, convID, user string) (protocol.Conversation, error) {
	if user == dev.User {
		return protocol.Conversation{}, protocol.Errorf(protocol.CodeBadRequest, "use group.leave to leave a group")
	}
	me, err := s.activeMemberOf(ctx, convID, dev.User)
	if err != nil {
		return protocol.Conversation{}, err
	}
	them, err := s.activeMemberOf(ctx, convID, user)
	if err != nil {
		return protocol.Conversation{}, err
	}
	if !outranks(me.Role, them.Role) {
		return protocol.Conversation{}, protocol.Errorf(protocol.CodeForbidden, "your role (%s) cannot remove a %s", me.Role, them.Role)
	}
	return s.removeMember(ctx, dev, convID, user, protocol.SysMemberRemoved)
}

// outranks reports whether a member with role a may remove one with role b.
func outranks(a, b storage.Role) bool {
	return rank(a) > rank(b) && rank(a) >= rank(storage.RoleAdmin)
}

func rank(r storage.Role) int {
	switch r {
	case storage.RoleOwner:
		return 3
	case storage.RoleAdmin:
		return 2
	}
	return 1
}

func (s *Service) removeMember(ctx context.Context, dev Device, convID, user, event string) (protocol.Conversation, error) {
	note, err := s.note(dev, convID, protocol.Body{Type: protocol.BodySystem, Event: event, User: user, By: dev.User})
	if err != nil {
		return protocol.Conversation{}, err
	}
	msg, err := s.store.RemoveMember(ctx, convID, user, note)
	if err != nil {
		return protocol.Conversation{}, s.convError(err, convID)
	}
	// The removed member is no longer in the member list but must learn it.
	s.fanout.enqueueWith(msg, user)
	return s.conversation(ctx, convID)
}

// Leave removes the caller from a group. When the owner leaves, the
// longest-standing admin, or else member, becomes owner first: should the
// removal then fail, the group has two owners and the leaver can retry,
// rather than a group left without one.
func (s *Service) Leave(ctx context.Context, dev Device, convID string) (protocol.Conversation, error) {
	me, err := s.activeMemberOf(ctx, convID, dev.User)
	if err != nil {
		return protocol.Conversation{}, err
	}
	if me.Role == storage.RoleOwner {
		if err := s.handOver(ctx, dev, convID); err != nil {
			return protocol.Conversation{}, err
		}
	}
	return s.removeMember(ctx, dev, convID, dev.User, protocol.SysMemberLeft)
}

// handOver makes the owner's successor owner, with a note from the owner.
func (s *Service) handOver(ctx context.Context, owner Device, convID string) error {
	ms, err := s.store.ActiveMembers(ctx, convID)
	if err != nil {
		return s.storeError("leave", err)
	}
	others := slices.DeleteFunc(ms, func(m storage.Member) bool { return m.UserID == owner.User })
	heir, ok := successor(others)
	if !ok {
		return nil // the last member leaves
	}
	if err := s.store.SetRole(ctx, convID, heir, storage.RoleOwner); err != nil {
		return s.convError(err, convID)
	}
	return s.roleNote(ctx, owner, convID, heir, owner.User, storage.RoleOwner)
}

func successor(ms []storage.Member) (string, bool) {
	var best *storage.Member
	for i := range ms {
		m := &ms[i]
		if best == nil ||
			(m.Role == storage.RoleAdmin && best.Role != storage.RoleAdmin) ||
			(m.Role == best.Role && (m.FromSeq < best.FromSeq || (m.FromSeq == best.FromSeq && m.UserID < best.UserID))) {
			best = m
		}
	}
	if best == nil {
		return "", false
	}
	return best.UserID, true
}

// SetRole lets the owner make a member admin or an admin member.
func (s *Service) SetRole(ctx context.Context, dev Device, convID, user, role string) (protocol.Conversation, error) {
	r, err := validRole(role, "")
	if err != nil || r == "" {
		return protocol.Conversation{}, protocol.Errorf(protocol.CodeBadRequest, "role must be admin or member")
	}
	me, err := s.activeMemberOf(ctx, convID, dev.User)
	if err != nil {
		return protocol.Conversation{}, err
	}
	if me.Role != storage.RoleOwner {
		return protocol.Conversation{}, protocol.Errorf(protocol.CodeForbidden, "only the owner changes roles")
	}
	if user == dev.User {
		return protocol.Conversation{}, protocol.Errorf(protocol.CodeBadRequest, "the owner's role cannot change; leave the group to hand it over")
	}
	if err := s.store.SetRole(ctx, convID, user, r); err != nil {
		return protocol.Conversation{}, s.convError(err, convID)
	}
	if err := s.roleNote(ctx, dev, convID, user, dev.User, r); err != nil {
		return protocol.Conversation{}, err
	}
	return s.conversation(ctx, convID)
}

// roleNote tells the members that user's role changed. It is appended
// after the change (the store's SetRole takes no note), so a crash in
// between leaves the new role without its note; the role itself is what
// conversation replies report.
func (s *Service) roleNote(ctx context.Context, from Device, convID, user, by string, role storage.Role) error {
	note, err := s.note(from, convID, protocol.Body{Type: protocol.BodySystem, Event: protocol.SysRoleChanged, User: user, By: by, Role: string(role)})
	if err != nil {
		return err
	}
	res, err := s.writer.append(ctx, note)
	if err != nil {
		return s.storeError("role note", err)
	}
	if res.Err != nil {
		return s.convError(res.Err, convID)
	}
	return nil
}
