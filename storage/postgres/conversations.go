package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/msgrhq/msgr/storage"
)

const conversationColumns = "id, kind, title, created_by, created_at, last_seq"

func scanConversation(row pgx.Row) (storage.Conversation, error) {
	var c storage.Conversation
	err := row.Scan(&c.ID, &c.Kind, &c.Title, &c.CreatedBy, &c.CreatedAt, &c.LastSeq)
	c.CreatedAt = c.CreatedAt.UTC()
	return c, err
}

// DirectConversation returns the direct conversation between a and b,
// creating it with id newID when none exists.
func (s *Store) DirectConversation(ctx context.Context, a, b, newID string, now time.Time) (storage.Conversation, bool, error) {
	if a == b {
		return storage.Conversation{}, false, fmt.Errorf("direct conversation of %q with itself", a)
	}
	lo, hi := min(a, b), max(a, b)
	c, err := s.directConversation(ctx, lo, hi)
	if err == nil || !errors.Is(err, storage.ErrNotFound) {
		return c, false, err
	}

	c = storage.Conversation{
		ID:        newID,
		Kind:      storage.KindDirect,
		CreatedBy: a,
		CreatedAt: dbTime(now),
	}
	var raced bool
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM users WHERE id IN ($1, $2)", lo, hi).Scan(&n); err != nil {
			return err
		}
		if n != 2 {
			return fmt.Errorf("users %q and %q: %w", a, b, storage.ErrNotFound)
		}
		if err := insertConversation(ctx, tx, c, c.CreatedAt); err != nil {
			return err
		}
		// A node creating the same pair concurrently makes this insert wait
		// for its commit and then do nothing; its conversation wins.
		tag, err := tx.Exec(ctx, `
			INSERT INTO direct_pairs (user_lo, user_hi, conv_id) VALUES ($1, $2, $3)
			ON CONFLICT (user_lo, user_hi) DO NOTHING`, lo, hi, newID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			raced = true
			return errRollback
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO members (conv_id, user_id, role, from_seq, joined_at)
			VALUES ($1, $2, 'member', 1, $4), ($1, $3, 'member', 1, $4)`,
			newID, lo, hi, c.CreatedAt)
		return err
	})
	if raced {
		c, err = s.directConversation(ctx, lo, hi)
		return c, false, err
	}
	if err != nil {
		return storage.Conversation{}, false, fmt.Errorf("create direct conversation %q: %w", newID, err)
	}
	return c, true, nil
}

// errRollback makes inTx roll back without it being a failure.
var errRollback = errors.New("rollback")

func (s *Store) directConversation(ctx context.Context, lo, hi string) (storage.Conversation, error) {
	c, err := scanConversation(s.pool.QueryRow(ctx, `
		SELECT c.id, c.kind, c.title, c.created_by, c.created_at, c.last_seq
		FROM direct_pairs p JOIN conversations c ON c.id = p.conv_id
		WHERE p.user_lo = $1 AND p.user_hi = $2`, lo, hi))
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.Conversation{}, fmt.Errorf("direct conversation of %q and %q: %w", lo, hi, storage.ErrNotFound)
	}
	if err != nil {
		return storage.Conversation{}, fmt.Errorf("direct conversation of %q and %q: %w", lo, hi, err)
	}
	return c, nil
}

func insertConversation(ctx context.Context, tx pgx.Tx, c storage.Conversation, lastAt time.Time) error {
	_, err := tx.Exec(ctx, `
		INSERT INTO conversations (id, kind, title, created_by, created_at, last_seq, last_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		c.ID, c.Kind, c.Title, c.CreatedBy, c.CreatedAt, c.LastSeq, lastAt)
	if hasCode(err, codeUniqueViolation) {
		return fmt.Errorf("conversation %q: %w", c.ID, storage.ErrExists)
	}
	return err
}

// CreateGroup creates a group owned by conv.CreatedBy whose first message,
// seq 1, is note.
func (s *Store) CreateGroup(ctx context.Context, conv storage.Conversation, members []string, maxMembers int, note storage.NewMessage) (storage.Conversation, storage.Message, error) {
	users := []string{conv.CreatedBy}
	seen := map[string]bool{conv.CreatedBy: true}
	for _, u := range members {
		if !seen[u] {
			seen[u] = true
			users = append(users, u)
		}
	}
	if maxMembers > 0 && len(users) > maxMembers {
		return storage.Conversation{}, storage.Message{}, fmt.Errorf("create group %q with %d members (limit %d): %w",
			conv.ID, len(users), maxMembers, storage.ErrGroupFull)
	}

	conv.Kind = storage.KindGroup
	conv.CreatedAt = dbTime(conv.CreatedAt)
	// The row starts empty so that appendNote numbers the note 1 the same
	// way it numbers every later note.
	conv.LastSeq = 0
	note.ConvID = conv.ID
	var msg storage.Message
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM users WHERE id = ANY($1)", users).Scan(&n); err != nil {
			return err
		}
		if n != len(users) {
			return fmt.Errorf("members: %w", storage.ErrNotFound)
		}
		if err := insertConversation(ctx, tx, conv, conv.CreatedAt); err != nil {
			return err
		}
		var err error
		if msg, err = s.appendNote(ctx, tx, note); err != nil {
			return err
		}
		conv.LastSeq = msg.Seq
		// The note's sender starts with it delivered and read (see
		// storage.Conversations).
		_, err = tx.Exec(ctx, `
			INSERT INTO members (conv_id, user_id, role, from_seq, joined_at, delivered_seq, read_seq)
			SELECT $1, u, CASE WHEN u = $2 THEN 'owner' ELSE 'member' END, $3, $4, r, r
			FROM unnest($5::text[]) AS u
			CROSS JOIN LATERAL (SELECT CASE WHEN u = $6 THEN $3::bigint ELSE 0 END) AS s (r)`,
			conv.ID, conv.CreatedBy, msg.Seq, conv.CreatedAt, users, msg.SenderID)
		return err
	})
	if err != nil {
		return storage.Conversation{}, storage.Message{}, fmt.Errorf("create group %q: %w", conv.ID, err)
	}
	return conv, msg, nil
}

// appendNote appends a system message to a conversation the transaction has
// locked or created.
func (s *Store) appendNote(ctx context.Context, tx pgx.Tx, note storage.NewMessage) (storage.Message, error) {
	if note.Kind == "" {
		note.Kind = storage.MsgSystem
	}
	m := storage.Message{
		ConvID:       note.ConvID,
		ID:           note.ID,
		SenderID:     note.SenderID,
		SenderDevice: note.SenderDevice,
		ClientMsgID:  note.ClientMsgID,
		Kind:         note.Kind,
		Body:         nonNil(note.Body),
		CreatedAt:    dbTime(note.CreatedAt),
	}
	if s.sealer != nil {
		return s.appendSealedNote(ctx, tx, m)
	}
	err := tx.QueryRow(ctx, `
		WITH bump AS (
			UPDATE conversations SET last_seq = last_seq + 1, last_at = greatest(last_at, $8)
			WHERE id = $1
			RETURNING last_seq
		)
		INSERT INTO messages (conv_id, seq, id, sender_id, sender_device, client_msg_id, kind, body, created_at)
		SELECT $1, last_seq, $2, $3, $4, $5, $6, $7, $8 FROM bump
		RETURNING seq`,
		m.ConvID, m.ID, m.SenderID, m.SenderDevice, m.ClientMsgID, m.Kind, m.Body, m.CreatedAt).
		Scan(&m.Seq)
	if err != nil {
		return storage.Message{}, fmt.Errorf("append note: %w", err)
	}
	return m, nil
}

// appendSealedNote is appendNote with encryption: the seq is part of the
// body's associated data, so it is allocated before the body is sealed, at
// the price of a second round trip (membership changes are rare).
func (s *Store) appendSealedNote(ctx context.Context, tx pgx.Tx, m storage.Message) (storage.Message, error) {
	var keyID int64
	err := tx.QueryRow(ctx, `UPDATE conversations SET last_seq = last_seq + 1, last_at = greatest(last_at, $2)
		WHERE id = $1 RETURNING last_seq, coalesce(key_id, 0)`, m.ConvID, m.CreatedAt).Scan(&m.Seq, &keyID)
	if err != nil {
		return storage.Message{}, fmt.Errorf("append note: %w", err)
	}
	k, err := s.txKey(ctx, tx, m.ConvID, keyID)
	if err != nil {
		return storage.Message{}, fmt.Errorf("append note: %w", err)
	}
	body, err := s.sealer.Seal(k.Wrapped, storage.BodyRef{ConvID: m.ConvID, Seq: m.Seq, KeyID: k.ID}, m.Body)
	if err != nil {
		return storage.Message{}, fmt.Errorf("append note: %w", err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO messages (conv_id, seq, id, sender_id, sender_device, client_msg_id, kind, body, created_at, key_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		m.ConvID, m.Seq, m.ID, m.SenderID, m.SenderDevice, m.ClientMsgID, m.Kind, body, m.CreatedAt, k.ID)
	if err != nil {
		return storage.Message{}, fmt.Errorf("append note: %w", err)
	}
	return m, nil
}

// raiseSenderSQL raises the Delivered and Read of a note's sender ($2) in
// conversation $1 to the note's seq ($3): sending implies having read
// everything up to it. Membership changes queue it after their members
// statement, in the same round trip, so that it also covers a sender who
// added themselves. Their conversation lock keeps other appends and
// membership changes off these rows, and AdvanceCursors and MarkRead only
// ever lock one user's rows, so the two rows can be taken in either order.
const raiseSenderSQL = `
UPDATE members SET delivered_seq = greatest(delivered_seq, $3), read_seq = greatest(read_seq, $3)
WHERE conv_id = $1 AND user_id = $2`

// execWithRaise runs a membership statement and then raiseSenderSQL for
// note in one round trip.
func execWithRaise(ctx context.Context, tx pgx.Tx, note storage.Message, sql string, args ...any) error {
	b := &pgx.Batch{}
	b.Queue(sql, args...)
	b.Queue(raiseSenderSQL, note.ConvID, note.SenderID, note.Seq)
	return tx.SendBatch(ctx, b).Close()
}

// lockGroup locks a conversation row for a membership change, which orders
// the change against concurrent appends, and checks it is a group.
func lockGroup(ctx context.Context, tx pgx.Tx, convID string) error {
	var kind storage.ConvKind
	err := tx.QueryRow(ctx, "SELECT kind FROM conversations WHERE id = $1 FOR NO KEY UPDATE", convID).Scan(&kind)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("conversation %q: %w", convID, storage.ErrNotFound)
	}
	if err != nil {
		return err
	}
	if kind != storage.KindGroup {
		return fmt.Errorf("conversation %q: %w", convID, storage.ErrNotGroup)
	}
	return nil
}

// GetConversation returns a conversation or storage.ErrNotFound.
func (s *Store) GetConversation(ctx context.Context, id string) (storage.Conversation, error) {
	c, err := scanConversation(s.pool.QueryRow(ctx,
		"SELECT "+conversationColumns+" FROM conversations WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.Conversation{}, fmt.Errorf("conversation %q: %w", id, storage.ErrNotFound)
	}
	if err != nil {
		return storage.Conversation{}, fmt.Errorf("get conversation %q: %w", id, err)
	}
	return c, nil
}

const memberColumns = "conv_id, user_id, role, from_seq, coalesce(until_seq, 0), joined_at, delivered_seq, read_seq"

func scanMember(row pgx.Row) (storage.Member, error) {
	var m storage.Member
	err := row.Scan(&m.ConvID, &m.UserID, &m.Role, &m.FromSeq, &m.UntilSeq, &m.JoinedAt, &m.Delivered, &m.Read)
	m.JoinedAt = m.JoinedAt.UTC()
	return m, err
}

// GetMember returns the membership (active or past) or storage.ErrNotMember.
func (s *Store) GetMember(ctx context.Context, convID, userID string) (storage.Member, error) {
	m, err := scanMember(s.pool.QueryRow(ctx,
		"SELECT "+memberColumns+" FROM members WHERE conv_id = $1 AND user_id = $2", convID, userID))
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.Member{}, fmt.Errorf("%q in %q: %w", userID, convID, storage.ErrNotMember)
	}
	if err != nil {
		return storage.Member{}, fmt.Errorf("get member %q of %q: %w", userID, convID, err)
	}
	return m, nil
}

// ActiveMembers lists the active members of a conversation ordered by UserID.
func (s *Store) ActiveMembers(ctx context.Context, convID string) ([]storage.Member, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+memberColumns+` FROM members
		WHERE conv_id = $1 AND until_seq IS NULL ORDER BY user_id`, convID)
	if err != nil {
		return nil, fmt.Errorf("active members of %q: %w", convID, err)
	}
	members, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.Member, error) {
		return scanMember(row)
	})
	if err != nil {
		return nil, fmt.Errorf("active members of %q: %w", convID, err)
	}
	return members, nil
}

// AddMember adds (or re-adds) userID to a group, appending note; the member
// can read from the note on.
func (s *Store) AddMember(ctx context.Context, convID, userID string, role storage.Role, maxMembers int, note storage.NewMessage) (storage.Message, error) {
	note.ConvID = convID
	var msg storage.Message
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockGroup(ctx, tx, convID); err != nil {
			return err
		}
		var userExists, active bool
		var activeCount int
		err := tx.QueryRow(ctx, `
			SELECT EXISTS (SELECT FROM users WHERE id = $2),
			       EXISTS (SELECT FROM members WHERE conv_id = $1 AND user_id = $2 AND until_seq IS NULL),
			       (SELECT count(*) FROM members WHERE conv_id = $1 AND until_seq IS NULL)`,
			convID, userID).Scan(&userExists, &active, &activeCount)
		switch {
		case err != nil:
			return err
		case !userExists:
			return fmt.Errorf("user %q: %w", userID, storage.ErrNotFound)
		case active:
			return fmt.Errorf("member %q: %w", userID, storage.ErrExists)
		case maxMembers > 0 && activeCount+1 > maxMembers:
			return fmt.Errorf("%d members (limit %d): %w", activeCount, maxMembers, storage.ErrGroupFull)
		}
		if msg, err = s.appendNote(ctx, tx, note); err != nil {
			return err
		}
		// A past member's row is reused: one row per (conversation, user)
		// keeps the visibility check a single lookup, at the price of
		// forgetting the range of an earlier membership.
		return execWithRaise(ctx, tx, msg, `
			INSERT INTO members (conv_id, user_id, role, from_seq, joined_at)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (conv_id, user_id) DO UPDATE
			SET role = excluded.role, from_seq = excluded.from_seq,
			    until_seq = NULL, joined_at = excluded.joined_at`,
			convID, userID, role, msg.Seq, msg.CreatedAt)
	})
	if err != nil {
		return storage.Message{}, fmt.Errorf("add %q to %q: %w", userID, convID, err)
	}
	return msg, nil
}

// RemoveMember ends userID's membership of a group, appending note, which
// is the last message the former member can read.
func (s *Store) RemoveMember(ctx context.Context, convID, userID string, note storage.NewMessage) (storage.Message, error) {
	note.ConvID = convID
	var msg storage.Message
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockGroup(ctx, tx, convID); err != nil {
			return err
		}
		var active bool
		err := tx.QueryRow(ctx, `SELECT EXISTS (
			SELECT FROM members WHERE conv_id = $1 AND user_id = $2 AND until_seq IS NULL)`,
			convID, userID).Scan(&active)
		if err != nil {
			return err
		}
		if !active {
			return fmt.Errorf("%q: %w", userID, storage.ErrNotMember)
		}
		if msg, err = s.appendNote(ctx, tx, note); err != nil {
			return err
		}
		return execWithRaise(ctx, tx, msg, "UPDATE members SET until_seq = $3 WHERE conv_id = $1 AND user_id = $2",
			convID, userID, msg.Seq)
	})
	if err != nil {
		return storage.Message{}, fmt.Errorf("remove %q from %q: %w", userID, convID, err)
	}
	return msg, nil
}

// SetRole changes an active member's role. It takes no conversation lock:
// roles do not affect sequencing.
func (s *Store) SetRole(ctx context.Context, convID, userID string, role storage.Role) error {
	tag, err := s.pool.Exec(ctx, `
		UPDATE members m SET role = $3
		FROM conversations c
		WHERE c.id = m.conv_id AND c.kind = 'group'
		  AND m.conv_id = $1 AND m.user_id = $2 AND m.until_seq IS NULL`,
		convID, userID, role)
	if err != nil {
		return fmt.Errorf("set role of %q in %q: %w", userID, convID, err)
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	c, err := s.GetConversation(ctx, convID)
	switch {
	case err != nil:
		return fmt.Errorf("set role of %q: %w", userID, err)
	case c.Kind != storage.KindGroup:
		return fmt.Errorf("set role of %q in %q: %w", userID, convID, storage.ErrNotGroup)
	default:
		return fmt.Errorf("set role of %q in %q: %w", userID, convID, storage.ErrNotMember)
	}
}

// UserConversations lists the conversations the user is or was a member of,
// newest activity first.
func (s *Store) UserConversations(ctx context.Context, userID string, limit int) ([]storage.Conversation, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT c.id, c.kind, c.title, c.created_by, c.created_at, c.last_seq
		FROM members m JOIN conversations c ON c.id = m.conv_id
		WHERE m.user_id = $1
		ORDER BY c.last_at DESC, c.last_seq DESC, c.id
		LIMIT $2`, userID, noLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("conversations of %q: %w", userID, err)
	}
	convs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.Conversation, error) {
		return scanConversation(row)
	})
	if err != nil {
		return nil, fmt.Errorf("conversations of %q: %w", userID, err)
	}
	return convs, nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
