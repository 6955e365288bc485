package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/msgrhq/msgr/storage"
)

// queryer is what *sql.DB and *sql.Tx have in common for single-row reads.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

const convColumns = `id, kind, title, created_by, created_at, last_seq`

func scanConv(sc interface{ Scan(...any) error }) (storage.Conversation, error) {
	var c storage.Conversation
	var created int64
	if err := sc.Scan(&c.ID, &c.Kind, &c.Title, &c.CreatedBy, &created, &c.LastSeq); err != nil {
		return storage.Conversation{}, err
	}
	c.CreatedAt = fromMillis(created)
	return c, nil
}

func getConv(ctx context.Context, q queryer, id string) (storage.Conversation, error) {
	c, err := scanConv(q.QueryRowContext(ctx, `SELECT `+convColumns+` FROM conversations WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return storage.Conversation{}, fmt.Errorf("conversation %q: %w", id, storage.ErrNotFound)
	}
	return c, err
}

// requireGroup returns ErrNotFound or ErrNotGroup unless id is a group.
func requireGroup(ctx context.Context, q queryer, id string) error {
	var kind storage.ConvKind
	err := q.QueryRowContext(ctx, `SELECT kind FROM conversations WHERE id = ?`, id).Scan(&kind)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("conversation %q: %w", id, storage.ErrNotFound)
	}
	if err != nil {
		return err
	}
	if kind != storage.KindGroup {
		return fmt.Errorf("conversation %q: %w", id, storage.ErrNotGroup)
	}
	return nil
}

// requireUsers returns ErrNotFound naming the first id that is not a user.
func requireUsers(ctx context.Context, q queryer, ids ...string) error {
	for _, id := range ids {
		var one int
		err := q.QueryRowContext(ctx, `SELECT 1 FROM users WHERE id = ?`, id).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("user %q: %w", id, storage.ErrNotFound)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// membership returns the user's until_seq and whether a row exists at all.
func membership(ctx context.Context, q queryer, convID, userID string) (until int64, found bool, err error) {
	err = q.QueryRowContext(ctx, `SELECT until_seq FROM members WHERE conv_id = ? AND user_id = ?`, convID, userID).Scan(&until)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return until, err == nil, err
}

func insertMember(ctx context.Context, tx *sql.Tx, convID, userID string, role storage.Role, fromSeq int64, joined time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO members (conv_id, user_id, role, from_seq, until_seq, joined_at)
		VALUES (?, ?, ?, ?, 0, ?)
		ON CONFLICT (conv_id, user_id) DO UPDATE SET
			role = excluded.role, from_seq = excluded.from_seq, until_seq = 0, joined_at = excluded.joined_at`,
		convID, userID, role, fromSeq, toMillis(joined))
	return err
}

func insertConv(ctx context.Context, tx *sql.Tx, c storage.Conversation) error {
	ms := toMillis(c.CreatedAt)
	_, err := tx.ExecContext(ctx, `INSERT INTO conversations (id, kind, title, created_by, created_at, last_seq, last_at)
		VALUES (?, ?, ?, ?, ?, 0, ?)`, c.ID, c.Kind, c.Title, c.CreatedBy, ms, ms)
	if isUniqueViolation(err) {
		return fmt.Errorf("conversation %q: %w", c.ID, storage.ErrExists)
	}
	return err
}

// DirectConversation returns the direct conversation between a and b,
// creating it with id newID when none exists.
func (s *Store) DirectConversation(ctx context.Context, a, b, newID string, now time.Time) (storage.Conversation, bool, error) {
	if a == b {
		return storage.Conversation{}, false, fmt.Errorf("sqlite: direct conversation: %q with itself", a)
	}
	lo, hi := min(a, b), max(a, b)
	// Most calls find an existing conversation; answer those from the read
	// pool without taking the write lock.
	c, err := directConv(ctx, s.r, lo, hi)
	if err == nil {
		return c, false, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return storage.Conversation{}, false, fmt.Errorf("sqlite: direct conversation: %w", err)
	}
	created := false
	err = inTx(ctx, s.w, func(tx *sql.Tx) error {
		// Re-check under the write lock: another writer may have created it.
		c, err = directConv(ctx, tx, lo, hi)
		if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if err := requireUsers(ctx, tx, a, b); err != nil {
			return err
		}
		c = storage.Conversation{ID: newID, Kind: storage.KindDirect, CreatedBy: a, CreatedAt: now}
		if err := insertConv(ctx, tx, c); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO direct_pairs (user_lo, user_hi, conv_id) VALUES (?, ?, ?)`, lo, hi, newID); err != nil {
			return err
		}
		for _, u := range []string{lo, hi} {
			if err := insertMember(ctx, tx, newID, u, storage.RoleMember, 1, now); err != nil {
				return err
			}
		}
		created = true
		return nil
	})
	if err != nil {
		return storage.Conversation{}, false, fmt.Errorf("sqlite: direct conversation: %w", err)
	}
	return c, created, nil
}

func directConv(ctx context.Context, q queryer, lo, hi string) (storage.Conversation, error) {
	var id string
	err := q.QueryRowContext(ctx, `SELECT conv_id FROM direct_pairs WHERE user_lo = ? AND user_hi = ?`, lo, hi).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.Conversation{}, storage.ErrNotFound
	}
	if err != nil {
		return storage.Conversation{}, err
	}
	return getConv(ctx, q, id)
}

// CreateGroup creates a group owned by conv.CreatedBy with the other users as
// members and note as seq 1. Duplicates in members, and the creator, are
// ignored. maxMembers <= 0 means no limit. An existing conv.ID is
// storage.ErrExists.
func (s *Store) CreateGroup(ctx context.Context, conv storage.Conversation, members []string, maxMembers int, note storage.NewMessage) (storage.Conversation, storage.Message, error) {
	others := distinctOthers(conv.CreatedBy, members)
	if maxMembers > 0 && len(others)+1 > maxMembers {
		return storage.Conversation{}, storage.Message{}, fmt.Errorf("sqlite: create group: %d members: %w", len(others)+1, storage.ErrGroupFull)
	}
	conv.Kind = storage.KindGroup
	var msg storage.Message
	err := inTx(ctx, s.w, func(tx *sql.Tx) error {
		if err := requireUsers(ctx, tx, append([]string{conv.CreatedBy}, others...)...); err != nil {
			return err
		}
		if err := insertConv(ctx, tx, conv); err != nil {
			return err
		}
		var err error
		if msg, err = s.appendNote(ctx, tx, conv.ID, note); err != nil {
			return err
		}
		if err := insertMember(ctx, tx, conv.ID, conv.CreatedBy, storage.RoleOwner, msg.Seq, conv.CreatedAt); err != nil {
			return err
		}
		for _, u := range others {
			if err := insertMember(ctx, tx, conv.ID, u, storage.RoleMember, msg.Seq, conv.CreatedAt); err != nil {
				return err
			}
		}
		return raiseSender(ctx, tx, msg)
	})
	if err != nil {
		return storage.Conversation{}, storage.Message{}, fmt.Errorf("sqlite: create group: %w", err)
	}
	conv.LastSeq = msg.Seq
	return conv, msg, nil
}

func distinctOthers(creator string, members []string) []string {
	seen := map[string]bool{creator: true}
	var out []string
	for _, m := range members {
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	return out
}

// GetConversation returns a conversation or storage.ErrNotFound.
func (s *Store) GetConversation(ctx context.Context, id string) (storage.Conversation, error) {
	c, err := getConv(ctx, s.r, id)
	if err != nil {
		return storage.Conversation{}, fmt.Errorf("sqlite: get conversation: %w", err)
	}
	return c, nil
}

// GetMember returns the membership (active or past) or storage.ErrNotMember.
func (s *Store) GetMember(ctx context.Context, convID, userID string) (storage.Member, error) {
	m, err := scanMember(s.r.QueryRowContext(ctx, `SELECT `+memberColumns+` FROM members
		WHERE conv_id = ? AND user_id = ?`, convID, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return storage.Member{}, fmt.Errorf("sqlite: get member %q of %q: %w", userID, convID, storage.ErrNotMember)
	}
	if err != nil {
		return storage.Member{}, fmt.Errorf("sqlite: get member %q of %q: %w", userID, convID, err)
	}
	return m, nil
}

const memberColumns = `conv_id, user_id, role, from_seq, until_seq, joined_at, delivered_seq, read_seq`

func scanMember(sc interface{ Scan(...any) error }) (storage.Member, error) {
	var m storage.Member
	var joined int64
	if err := sc.Scan(&m.ConvID, &m.UserID, &m.Role, &m.FromSeq, &m.UntilSeq, &joined, &m.Delivered, &m.Read); err != nil {
		return storage.Member{}, err
	}
	m.JoinedAt = fromMillis(joined)
	return m, nil
}

// ActiveMembers lists the active members of a conversation ordered by UserID.
func (s *Store) ActiveMembers(ctx context.Context, convID string) ([]storage.Member, error) {
	out, err := queryAll(ctx, s.r, scanMember, `SELECT `+memberColumns+` FROM members
		WHERE conv_id = ? AND until_seq = 0 ORDER BY user_id`, convID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: active members of %q: %w", convID, err)
	}
	return out, nil
}

// AddMember adds or re-adds userID to a group, appending note; the member's
// FromSeq is the note's seq and JoinedAt the note's time. A re-added member
// sees only messages from the new FromSeq on. maxMembers <= 0 means no limit.
func (s *Store) AddMember(ctx context.Context, convID, userID string, role storage.Role, maxMembers int, note storage.NewMessage) (storage.Message, error) {
	var msg storage.Message
	err := inTx(ctx, s.w, func(tx *sql.Tx) error {
		if err := requireGroup(ctx, tx, convID); err != nil {
			return err
		}
		if err := requireUsers(ctx, tx, userID); err != nil {
			return err
		}
		until, found, err := membership(ctx, tx, convID, userID)
		if err != nil {
			return err
		}
		if found && until == 0 {
			return fmt.Errorf("member %q: %w", userID, storage.ErrExists)
		}
		if maxMembers > 0 {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM members WHERE conv_id = ? AND until_seq = 0`, convID).Scan(&n); err != nil {
				return err
			}
			if n+1 > maxMembers {
				return fmt.Errorf("%d members: %w", n+1, storage.ErrGroupFull)
			}
		}
		if msg, err = s.appendNote(ctx, tx, convID, note); err != nil {
			return err
		}
		if err := insertMember(ctx, tx, convID, userID, role, msg.Seq, msg.CreatedAt); err != nil {
			return err
		}
		// After the insert, so that it covers a user adding themselves.
		return raiseSender(ctx, tx, msg)
	})
	if err != nil {
		return storage.Message{}, fmt.Errorf("sqlite: add member %q to %q: %w", userID, convID, err)
	}
	return msg, nil
}

// RemoveMember ends userID's membership of a group, appending note, which
// becomes the member's UntilSeq.
func (s *Store) RemoveMember(ctx context.Context, convID, userID string, note storage.NewMessage) (storage.Message, error) {
	var msg storage.Message
	err := inTx(ctx, s.w, func(tx *sql.Tx) error {
		if err := requireGroup(ctx, tx, convID); err != nil {
			return err
		}
		until, found, err := membership(ctx, tx, convID, userID)
		if err != nil {
			return err
		}
		if !found || until != 0 {
			return storage.ErrNotMember
		}
		if msg, err = s.appendNote(ctx, tx, convID, note); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE members SET until_seq = ? WHERE conv_id = ? AND user_id = ?`, msg.Seq, convID, userID); err != nil {
			return err
		}
		return raiseSender(ctx, tx, msg)
	})
	if err != nil {
		return storage.Message{}, fmt.Errorf("sqlite: remove member %q from %q: %w", userID, convID, err)
	}
	return msg, nil
}

// SetRole changes an active member's role. An unknown conversation is
// storage.ErrNotFound.
func (s *Store) SetRole(ctx context.Context, convID, userID string, role storage.Role) error {
	err := inTx(ctx, s.w, func(tx *sql.Tx) error {
		if err := requireGroup(ctx, tx, convID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE members SET role = ? WHERE conv_id = ? AND user_id = ? AND until_seq = 0`, role, convID, userID)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return storage.ErrNotMember
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: set role of %q in %q: %w", userID, convID, err)
	}
	return nil
}

// UserConversations lists the conversations the user is or was a member of,
// newest activity (last message, else creation) first, then by id.
func (s *Store) UserConversations(ctx context.Context, userID string, limit int) ([]storage.Conversation, error) {
	out, err := queryAll(ctx, s.r, scanConv, `SELECT c.id, c.kind, c.title, c.created_by, c.created_at, c.last_seq
		FROM members m JOIN conversations c ON c.id = m.conv_id
		WHERE m.user_id = ?
		ORDER BY c.last_at DESC, c.id
		LIMIT ?`, userID, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: conversations of %q: %w", userID, err)
	}
	return out, nil
}
