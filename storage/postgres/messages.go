package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/msgrhq/msgr/storage"
	"github.com/msgrhq/msgr/storage/seal"
)

// AppendMessages stores a batch in one transaction and, usually, two round
// trips however large the batch:
//
//  1. Pipelined with BEGIN: lock the batch's conversations (reading their
//     last seqs) and the senders' active members rows.
//  2. Decide every item in Go and seal the new bodies; then, pipelined, insert
//     the new messages, advance the conversations and raise the senders'
//     receipts in one statement, and COMMIT.
//
// Batches of at least Store.copyMin new messages are written with COPY
// instead of the INSERT (one more round trip). Conversations without a data
// key cost a round trip each when they occur.
//
// Duplicates of stored messages (a client retrying a send) are rare, so the
// first attempt does not look for them: the unique key on (conversation,
// sender, client message id) rejects the insert, nothing is committed, and
// the batch is tried again with the stored messages read in step 1 (see
// appendMessages). For dupProbeWindow after that, batches read them first,
// so that a reconnect storm full of retries is not paid twice.
//
// The conversation locks make the decisions safe when several nodes append
// to the same conversations: under READ COMMITTED each statement after the
// lock takes a fresh snapshot, so the reads see everything committed before
// the locks were granted, and nothing can change those conversations'
// members (membership changes lock the conversation too), messages or
// last_seq until commit; a duplicate committed by another node before our
// lock was granted is seen by the read or rejected by the unique key.
// Locking in id order keeps two batches from deadlocking; see
// queueAppendReads for the members rows.
//
// Nothing is committed unless every statement succeeded: a failed statement
// makes PostgreSQL skip the rest of the pipeline, COMMIT included, and the
// transaction is rolled back.
func (s *Store) AppendMessages(ctx context.Context, batch []storage.NewMessage) ([]storage.AppendResult, error) {
	probe := time.Now().UnixNano() < s.dupProbeUntil.Load()
	results, err := s.appendMessages(ctx, batch, probe)
	if !probe && isDuplicateKey(err) {
		s.dupProbeUntil.Store(time.Now().Add(s.dupProbeWindow).UnixNano())
		results, err = s.appendMessages(ctx, batch, true)
	}
	return results, err
}

// defaultDupProbeWindow is how long AppendMessages reads stored duplicates
// up front after it met one.
const defaultDupProbeWindow = 10 * time.Second

// isDuplicateKey reports whether err is a violation of the messages'
// idempotency key (the partitions' unique indexes are named after its
// columns).
func isDuplicateKey(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && strings.Contains(pgErr.ConstraintName, "client_msg_id")
}

// appendMessages is AppendMessages, with probe: whether to read stored
// messages with the batch's idempotency keys first. Without, a duplicate of
// a stored message fails the batch with a unique violation.
func (s *Store) appendMessages(ctx context.Context, batch []storage.NewMessage, probe bool) ([]storage.AppendResult, error) {
	results := make([]storage.AppendResult, len(batch))
	var keys []msgKey
	for i, nm := range batch {
		if nm.ClientMsgID == "" {
			results[i].Err = errors.New("append message: empty client message id")
			continue
		}
		keys = append(keys, msgKey{nm.ConvID, nm.SenderID, nm.ClientMsgID})
	}
	if len(keys) == 0 {
		return results, nil
	}

	if s.sealer != nil {
		convs := make([]string, len(keys))
		for i, k := range keys {
			convs[i] = k.conv
		}
		if err := s.warmKeys(ctx, convs); err != nil {
			return nil, fmt.Errorf("append messages: %w", err)
		}
	}

	// The connection, not a pool transaction: the transaction ends with a
	// COMMIT inside the last pipeline, which a pgx.Tx would not know about
	// (its Rollback or Commit would cost another round trip).
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("append messages: %w", err)
	}
	defer conn.Release() // destroys the connection if it is still in a transaction
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	st := queueAppendReads(b, keys, probe)
	br := conn.SendBatch(ctx, b)
	tx := br.Tx()
	defer func() {
		// Still in the transaction: something failed before or in the
		// final pipeline.
		if conn.Conn().PgConn().TxStatus() != 'I' {
			tx.Rollback(ctx) //nolint:errcheck // a failed rollback closes the connection
		}
	}()
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("append messages: %w", err)
	}
	if err := s.openDuplicates(ctx, tx, st); err != nil {
		return nil, fmt.Errorf("append messages: %w", err)
	}
	sealKeys := make(map[string]seal.Key) // conversations' keys, resolved under the lock

	var rows newRows
	lastAt := make(map[string]time.Time) // conversations that got messages
	// Newest stored seq per (conversation, sender): sending implies having
	// read everything up to one's own message.
	sent := make(map[[2]string]int64)
	for i, nm := range batch {
		if results[i].Err != nil {
			continue
		}
		seq, ok := st.lastSeq[nm.ConvID]
		if !ok {
			results[i].Err = fmt.Errorf("conversation %q: %w", nm.ConvID, storage.ErrNotFound)
			continue
		}
		if !st.active[[2]string{nm.ConvID, nm.SenderID}] {
			results[i].Err = fmt.Errorf("%q in %q: %w", nm.SenderID, nm.ConvID, storage.ErrNotMember)
			continue
		}
		key := msgKey{nm.ConvID, nm.SenderID, nm.ClientMsgID}
		if m, ok := st.stored[key]; ok {
			results[i] = storage.AppendResult{Message: m, Duplicate: true}
			continue
		}
		m := storage.Message{
			ConvID:       nm.ConvID,
			Seq:          seq + 1,
			ID:           nm.ID,
			SenderID:     nm.SenderID,
			SenderDevice: nm.SenderDevice,
			ClientMsgID:  nm.ClientMsgID,
			Kind:         nm.Kind,
			Body:         nonNil(nm.Body),
			CreatedAt:    dbTime(nm.CreatedAt),
		}
		st.lastSeq[m.ConvID] = m.Seq
		st.stored[key] = m
		sent[[2]string{m.ConvID, m.SenderID}] = m.Seq // seqs only grow
		if at, ok := lastAt[m.ConvID]; !ok || m.CreatedAt.After(at) {
			lastAt[m.ConvID] = m.CreatedAt
		}
		results[i].Message = m
		body, keyID := m.Body, pgtype.Int8{}
		if s.sealer != nil {
			k, ok := sealKeys[m.ConvID]
			if !ok {
				var err error
				if k, err = s.txKey(ctx, tx, m.ConvID, st.keyID[m.ConvID]); err != nil {
					return nil, fmt.Errorf("append messages: %w", err)
				}
				sealKeys[m.ConvID] = k
			}
			var err error
			if body, err = s.sealer.Seal(k.Wrapped, storage.BodyRef{ConvID: m.ConvID, Seq: m.Seq, KeyID: k.ID}, m.Body); err != nil {
				return nil, fmt.Errorf("append messages: %w", err)
			}
			keyID = pgtype.Int8{Int64: k.ID, Valid: true}
		}
		rows.add(m, body, keyID)
	}

	// The last pipeline. stages name its statements, done counts those that
	// succeeded: an error is the first failed statement's.
	b = &pgx.Batch{}
	var stages []string
	done := 0
	queue := func(stage, sql string, args ...any) {
		stages = append(stages, stage)
		b.Queue(sql, args...).Exec(func(ct pgconn.CommandTag) error {
			// PostgreSQL reports a failed transaction's COMMIT as ROLLBACK.
			if sql == "COMMIT" && ct.String() != "COMMIT" {
				return pgx.ErrTxCommitRollback
			}
			done++
			return nil
		})
	}
	if rows.len() > 0 {
		if rows.len() >= s.copyMin {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"messages"}, messageColumnNames(), pgx.CopyFromRows(rows.copyRows())); err != nil {
				return nil, fmt.Errorf("append messages: copy: %w", err)
			}
		} else {
			queue("insert", insertMessagesSQL, rows.args()...)
		}
		queue("advance conversations and senders", appendFinishSQL, finishArgs(st, lastAt, sent)...)
	}
	queue("commit", "COMMIT")
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("append messages: %s: %w", stages[min(done, len(stages)-1)], err)
	}
	// Keys created by this transaction are committed now: cache them, so
	// that the conversation's next append need not read them back.
	for conv, k := range sealKeys {
		if st.keyID[conv] == 0 {
			s.keys.Put(conv, k)
		}
	}
	return results, nil
}

// defaultCopyMin is the batch size (new messages) from which AppendMessages
// writes with COPY instead of INSERT ... SELECT FROM unnest. COPY costs one
// round trip more and a little less per row: in BenchmarkAppendWritePath the
// INSERT is ahead at 10 messages, the two are level within noise from 100 to
// 500, and COPY is 6% ahead at 1,000 (docs/BENCHMARKS.md, issue 7). msgrd's
// batches (256 at most by default) take the INSERT.
const defaultCopyMin = 500

// insertMessagesSQL inserts the new messages of a batch, one array per
// column (see newRows.args).
const insertMessagesSQL = `
INSERT INTO messages (conv_id, seq, id, sender_id, sender_device, client_msg_id, kind, body, created_at, key_id)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
	$8::bytea[], $9::timestamptz[], $10::bigint[])`

// newRows are the new messages of a batch, column by column.
type newRows struct {
	convs, ids, senders, devices, cmids, kinds []string
	seqs                                       []int64
	bodies                                     [][]byte
	ats                                        []time.Time
	keyIDs                                     []pgtype.Int8
}

func (r *newRows) add(m storage.Message, body []byte, keyID pgtype.Int8) {
	r.convs = append(r.convs, m.ConvID)
	r.seqs = append(r.seqs, m.Seq)
	r.ids = append(r.ids, m.ID)
	r.senders = append(r.senders, m.SenderID)
	r.devices = append(r.devices, m.SenderDevice)
	r.cmids = append(r.cmids, m.ClientMsgID)
	r.kinds = append(r.kinds, string(m.Kind))
	r.bodies = append(r.bodies, body)
	r.ats = append(r.ats, m.CreatedAt)
	r.keyIDs = append(r.keyIDs, keyID)
}

func (r *newRows) len() int { return len(r.convs) }

// args are insertMessagesSQL's arguments, in messageColumnNames order.
func (r *newRows) args() []any {
	return []any{r.convs, r.seqs, r.ids, r.senders, r.devices, r.cmids, r.kinds, r.bodies, r.ats, r.keyIDs}
}

// copyRows are the rows for COPY, in messageColumnNames order.
func (r *newRows) copyRows() [][]any {
	rows := make([][]any, r.len())
	for i := range rows {
		rows[i] = []any{r.convs[i], r.seqs[i], r.ids[i], r.senders[i], r.devices[i], r.cmids[i], r.kinds[i], r.bodies[i], r.ats[i], r.keyIDs[i]}
	}
	return rows
}

// finishArgs are appendFinishSQL's arguments: the conversations that got
// messages with their new last seqs and times, and the newest seq per
// (conversation, sender).
func finishArgs(st *appendState, lastAt map[string]time.Time, sent map[[2]string]int64) []any {
	ids := make([]string, 0, len(lastAt))
	seqs := make([]int64, 0, len(lastAt))
	ats := make([]time.Time, 0, len(lastAt))
	for id, at := range lastAt {
		ids, seqs, ats = append(ids, id), append(seqs, st.lastSeq[id]), append(ats, at)
	}
	sconvs := make([]string, 0, len(sent))
	susers := make([]string, 0, len(sent))
	sseqs := make([]int64, 0, len(sent))
	for k, seq := range sent {
		sconvs, susers, sseqs = append(sconvs, k[0]), append(susers, k[1]), append(sseqs, seq)
	}
	return []any{ids, seqs, ats, sconvs, susers, sseqs}
}

// appendFinishSQL is the statement after the insert: it advances the
// conversations ($1 ids, $2 last seqs, $3 last times) and raises the
// senders' Delivered and Read ($4 conversations, $5 users, $6 seqs).
//
// Every row it writes is already locked by the transaction (the
// conversations and the senders' members rows, by queueAppendReads), so it
// waits for nobody and the order in which the planner's join visits the
// rows does not matter. Under READ COMMITTED it reads each members row as
// the last committed raise left it, before our lock was granted, so
// greatest() never lowers a concurrent raise. The conversations CTE runs to
// completion although nothing reads it.
const appendFinishSQL = `
WITH convs AS (
	UPDATE conversations c SET last_seq = u.last_seq, last_at = greatest(c.last_at, u.last_at)
	FROM unnest($1::text[], $2::bigint[], $3::timestamptz[]) AS u (id, last_seq, last_at)
	WHERE c.id = u.id
)
UPDATE members m
SET delivered_seq = greatest(m.delivered_seq, k.seq), read_seq = greatest(m.read_seq, k.seq)
FROM unnest($4::text[], $5::text[], $6::bigint[]) AS k (conv_id, user_id, seq)
WHERE m.conv_id = k.conv_id AND m.user_id = k.user_id`

func messageColumnNames() []string {
	return []string{"conv_id", "seq", "id", "sender_id", "sender_device", "client_msg_id", "kind", "body", "created_at", "key_id"}
}

// msgKey is the idempotency key of a message.
type msgKey struct{ conv, sender, cmid string }

// appendState is what AppendMessages reads before deciding a batch.
type appendState struct {
	lastSeq map[string]int64           // locked conversations' newest seqs
	keyID   map[string]int64           // locked conversations' current data key ids (0: none)
	active  map[[2]string]bool         // active (conversation, user) memberships
	stored  map[msgKey]storage.Message // stored messages with the batch's keys
	sealed  []seal.Row                 // the same, as stored, until openDuplicates
}

// queueAppendReads queues the locks and the reads for keys on b (the read
// of stored duplicates only with probe) and returns the state their results
// fill in. The reads are LATERAL joins so that each
// key is one index probe whatever the statistics say: a hash join would
// read whole tables, and a generic plan cached while the tables were small
// would keep doing so.
func queueAppendReads(b *pgx.Batch, keys []msgKey, probe bool) *appendState {
	st := &appendState{
		lastSeq: make(map[string]int64),
		keyID:   make(map[string]int64),
		active:  make(map[[2]string]bool),
		stored:  make(map[msgKey]storage.Message),
	}
	convs := make([]string, len(keys))
	senders := make([]string, len(keys))
	cmids := make([]string, len(keys))
	for i, k := range keys {
		convs[i], senders[i], cmids[i] = k.conv, k.sender, k.cmid
	}
	sorted := slices.Compact(slices.Sorted(slices.Values(convs)))

	// The nested loop follows the array, so the locks are taken in order.
	b.Queue(`SELECT c.id, c.last_seq, coalesce(c.key_id, 0) FROM unnest($1::text[]) AS k (id)
		CROSS JOIN LATERAL (
			SELECT id, last_seq, key_id FROM conversations WHERE id = k.id FOR NO KEY UPDATE) AS c`,
		sorted).
		Query(func(rows pgx.Rows) error {
			var id string
			var seq, keyID int64
			_, err := pgx.ForEachRow(rows, []any{&id, &seq, &keyID}, func() error {
				st.lastSeq[id] = seq
				st.keyID[id] = keyID
				return nil
			})
			return err
		})
	// The senders' members rows are locked here, in (conversation, user)
	// order, for appendFinishSQL to raise. AdvanceCursors and MarkRead lock
	// members rows without the conversation lock: AdvanceCursors one user's
	// rows in conversation order, AdvanceCursorsBatch in (conversation, user)
	// order, MarkRead one row, so taking ours in (conversation, user) order
	// cannot deadlock with them; the nested loop follows the array. Only
	// active memberships are locked: nobody else sends for the others.
	pairs := make([][2]string, len(keys))
	for i, k := range keys {
		pairs[i] = [2]string{k.conv, k.sender}
	}
	slices.SortFunc(pairs, func(a, b [2]string) int {
		return cmp.Or(strings.Compare(a[0], b[0]), strings.Compare(a[1], b[1]))
	})
	pairs = slices.Compact(pairs)
	pconvs := make([]string, len(pairs))
	pusers := make([]string, len(pairs))
	for i, p := range pairs {
		pconvs[i], pusers[i] = p[0], p[1]
	}
	b.Queue(`SELECT k.conv_id, k.user_id FROM unnest($1::text[], $2::text[]) AS k (conv_id, user_id)
		CROSS JOIN LATERAL (
			SELECT FROM members m
			WHERE m.conv_id = k.conv_id AND m.user_id = k.user_id AND m.until_seq IS NULL
			FOR NO KEY UPDATE) AS m`,
		pconvs, pusers).
		Query(func(rows pgx.Rows) error {
			var conv, user string
			_, err := pgx.ForEachRow(rows, []any{&conv, &user}, func() error {
				st.active[[2]string{conv, user}] = true
				return nil
			})
			return err
		})
	if !probe {
		return st
	}
	b.Queue(`SELECT d.* FROM unnest($1::text[], $2::text[], $3::text[]) AS k (conv_id, sender_id, client_msg_id)
		CROSS JOIN LATERAL (
			SELECT `+messageColumns+` FROM messages m
			WHERE m.conv_id = k.conv_id AND m.sender_id = k.sender_id AND m.client_msg_id = k.client_msg_id
			LIMIT 1) AS d`,
		convs, senders, cmids).
		Query(func(rows pgx.Rows) error {
			var err error
			st.sealed, err = collectMessages(rows)
			return err
		})
	return st
}

const messageColumns = "conv_id, seq, id, sender_id, sender_device, client_msg_id, kind, body, created_at, coalesce(key_id, 0)"

func collectMessages(rows pgx.Rows) ([]seal.Row, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (seal.Row, error) {
		var m seal.Row
		err := row.Scan(&m.ConvID, &m.Seq, &m.ID, &m.SenderID, &m.SenderDevice,
			&m.ClientMsgID, &m.Kind, &m.Body, &m.CreatedAt, &m.KeyID)
		m.CreatedAt = m.CreatedAt.UTC()
		return m, err
	})
}

// openDuplicates decrypts the earlier messages the batch repeats into
// st.stored. Duplicates are rare (client retries), so reading their keys
// costs a round trip only when there are some.
func (s *Store) openDuplicates(ctx context.Context, tx pgx.Tx, st *appendState) error {
	if len(st.sealed) == 0 {
		return nil
	}
	keys := make(map[int64]string)
	if s.sealer != nil {
		var err error
		if keys, err = keysByID(ctx, tx, missingKeyIDs(st.sealed, keys)); err != nil {
			return fmt.Errorf("read data keys: %w", err)
		}
	}
	msgs, err := s.open(st.sealed, keys)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		st.stored[msgKey{m.ConvID, m.SenderID, m.ClientMsgID}] = m
	}
	st.sealed = nil
	return nil
}

// MessagesAfter returns up to limit messages with after < seq <= upTo,
// ascending; limit 0 means no limit.
func (s *Store) MessagesAfter(ctx context.Context, convID string, after, upTo int64, limit int) ([]storage.Message, error) {
	msgs, err := s.readMessages(ctx, convID, "SELECT "+messageColumns+` FROM messages
		WHERE conv_id = $1 AND seq > $2 AND seq <= $3
		ORDER BY seq LIMIT $4`, convID, after, upTo, noLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("messages of %q after %d: %w", convID, after, err)
	}
	return msgs, nil
}

// MessagesBefore returns up to limit messages with from <= seq < before,
// newest first; limit 0 means no limit.
func (s *Store) MessagesBefore(ctx context.Context, convID string, before, from int64, limit int) ([]storage.Message, error) {
	msgs, err := s.readMessages(ctx, convID, "SELECT "+messageColumns+` FROM messages
		WHERE conv_id = $1 AND seq >= $2 AND seq < $3
		ORDER BY seq DESC LIMIT $4`, convID, from, before, noLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("messages of %q before %d: %w", convID, before, err)
	}
	return msgs, nil
}

// readMessages runs a query for messages of convID and decrypts them. With
// a sealer the conversation's data keys are read in the same round trip.
func (s *Store) readMessages(ctx context.Context, convID, query string, args ...any) ([]storage.Message, error) {
	keys := make(map[int64]string)
	var sealed []seal.Row
	if s.sealer == nil {
		rows, err := s.pool.Query(ctx, query, args...)
		if err != nil {
			return nil, err
		}
		if sealed, err = collectMessages(rows); err != nil {
			return nil, err
		}
		return s.open(sealed, keys)
	}
	b := &pgx.Batch{}
	b.Queue(query, args...).Query(func(rows pgx.Rows) error {
		var err error
		sealed, err = collectMessages(rows)
		return err
	})
	// After the messages: a key created meanwhile is harmless, and a key
	// shredded meanwhile reads as shredded.
	queueKeys(b, convID, keys)
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	return s.open(sealed, keys)
}
