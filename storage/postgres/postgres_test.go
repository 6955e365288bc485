package postgres_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/msgrhq/msgr/storage"
	"github.com/msgrhq/msgr/storage/postgres"
	"github.com/msgrhq/msgr/storage/postgres/pgtest"
	"github.com/msgrhq/msgr/storage/storetest"
)

// openStore opens the store as the broker does: encrypting, here under a
// master key derived from the database URL, so that every node of a test
// database shares it, as they must.
func openStore(tb testing.TB, databaseURL string) *postgres.Store {
	tb.Helper()
	key := sha256.Sum256([]byte(databaseURL))
	s, err := postgres.Open(context.Background(), databaseURL, postgres.WithSealer(storetest.NewSealer(tb, key[:])))
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storage.Store {
		return openStore(t, pgtest.FreshSchema(t))
	})
}

func TestOpenUnreachable(t *testing.T) {
	// Nothing listens on port 1; the error must say where we tried.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := postgres.Open(ctx, "postgres://msgr@127.0.0.1:1/msgr?sslmode=disable&connect_timeout=5")
	if err == nil {
		t.Fatal("Open succeeded with nothing listening")
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("error %q does not name the host", err)
	}
}

// TestOpenSilentServer points Open at a server that accepts connections and
// never answers, without a deadline of its own: the default connect timeout
// must end it with an error that says where.
func TestOpenSilentServer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn // accepted and left unanswered
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-accepted
		for _, c := range held {
			c.Close()
		}
	})

	errc := make(chan error, 1)
	go func() {
		s, err := postgres.Open(context.Background(), "postgres://msgr@"+ln.Addr().String()+"/msgr?sslmode=disable")
		if err == nil {
			s.Close()
		}
		errc <- err
	}()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Open succeeded against a server that never answers")
		}
		if !strings.Contains(err.Error(), ln.Addr().String()) {
			t.Errorf("error %q does not name the server", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Open still waiting after a minute for a server that never answers")
	}
}

func TestMigrateConcurrentOpen(t *testing.T) {
	u := pgtest.FreshSchema(t)
	const nodes = 4
	var wg sync.WaitGroup
	errs := make([]error, nodes)
	for i := range nodes {
		wg.Go(func() {
			s, err := postgres.Open(context.Background(), u)
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		}
	}

	conn := connect(t, u)
	var n, maxVersion int
	if err := conn.QueryRow(context.Background(),
		"SELECT count(*), max(version) FROM schema_migrations").Scan(&n, &maxVersion); err != nil {
		t.Fatal(err)
	}
	if n != maxVersion || n == 0 {
		t.Errorf("schema_migrations has %d rows up to version %d, want each version once", n, maxVersion)
	}
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	u := pgtest.FreshSchema(t)
	openStore(t, u).Close()

	conn := connect(t, u)
	if _, err := conn.Exec(context.Background(),
		"INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future.sql')"); err != nil {
		t.Fatal(err)
	}
	_, err := postgres.Open(context.Background(), u)
	if err == nil {
		t.Fatal("Open accepted a database newer than the binary")
	}
	if !strings.Contains(err.Error(), "9999") || !strings.Contains(err.Error(), "newer") {
		t.Errorf("error %q does not explain the version mismatch", err)
	}
}

// TestUpgradeFromV1 opens a database created by the first schema version,
// with data: the receipts migration must keep it and derive Delivered from
// the device cursors.
func TestUpgradeFromV1(t *testing.T) {
	u := pgtest.FreshSchema(t)
	ctx := context.Background()
	v1, err := os.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	conn := connect(t, u)
	for _, q := range []string{
		string(v1),
		`CREATE TABLE schema_migrations (version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
		`INSERT INTO schema_migrations (version, name) VALUES (1, '0001_init.sql')`,
		`INSERT INTO users (id, password_hash, created_at) VALUES ('alice', 'h', now()), ('bob', 'h', now())`,
		`INSERT INTO conversations (id, kind, created_by, created_at, last_seq, last_at) VALUES ('ab', 'direct', 'alice', now(), 6, now())`,
		`INSERT INTO direct_pairs (user_lo, user_hi, conv_id) VALUES ('alice', 'bob', 'ab')`,
		`INSERT INTO members (conv_id, user_id, role, from_seq, joined_at) VALUES ('ab', 'alice', 'member', 1, now()), ('ab', 'bob', 'member', 1, now())`,
		`INSERT INTO device_cursors (user_id, device_id, conv_id, seq) VALUES ('alice', 'phone', 'ab', 3), ('alice', 'laptop', 'ab', 5)`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	s := openStore(t, u)
	storetest.CheckUpgradedFromV1(t, s)
	// The presence check was added without validating old rows; it must
	// still hold for new writes.
	if err := s.SetSettings(ctx, "alice", storage.Settings{Presence: "friends"}); err == nil {
		t.Error("SetSettings accepted presence \"friends\" after the upgrade")
	}
}

func connect(tb testing.TB, databaseURL string) *pgx.Conn {
	tb.Helper()
	conn, err := pgx.Connect(context.Background(), databaseURL)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// setupGroup creates users and a group of them owned by the first.
func setupGroup(tb testing.TB, s storage.Store, convID string, users ...string) {
	tb.Helper()
	ctx := context.Background()
	now := time.Now()
	for _, u := range users {
		err := s.CreateUser(ctx, storage.User{ID: u, PasswordHash: "x", CreatedAt: now})
		if err != nil && !errors.Is(err, storage.ErrExists) {
			tb.Fatalf("CreateUser: %v", err)
		}
	}
	conv := storage.Conversation{ID: convID, Kind: storage.KindGroup, CreatedBy: users[0], CreatedAt: now}
	_, _, err := s.CreateGroup(ctx, conv, users[1:], 0, storage.NewMessage{
		ID: "create-" + convID, SenderID: users[0], SenderDevice: "server",
		ClientMsgID: "create-" + convID, Kind: storage.MsgSystem, Body: []byte(`{}`), CreatedAt: now,
	})
	if err != nil {
		tb.Fatalf("CreateGroup: %v", err)
	}
}

func textMessage(convID, sender, cmid string) storage.NewMessage {
	return storage.NewMessage{
		ConvID: convID, ID: "id-" + sender + "-" + cmid, SenderID: sender, SenderDevice: "d",
		ClientMsgID: cmid, Kind: storage.MsgText, Body: []byte(`{"text":"hi"}`), CreatedAt: time.Now(),
	}
}

// TestAppendBatchMixed checks one batch with new messages, an in-batch
// duplicate and rejected items: rejected items and duplicates take no seq
// and do not stop the others.
func TestAppendBatchMixed(t *testing.T) {
	s := openStore(t, pgtest.FreshSchema(t))
	ctx := context.Background()
	setupGroup(t, s, "g", "alice", "bob")
	if err := s.CreateUser(ctx, storage.User{ID: "eve", PasswordHash: "x", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}

	batch := []storage.NewMessage{
		textMessage("g", "alice", "a1"),
		textMessage("nope", "alice", "n1"),
		textMessage("g", "eve", "e1"),
		textMessage("g", "bob", "b1"),
		textMessage("g", "alice", "a1"), // duplicate of item 0
		textMessage("g", "alice", "a2"),
	}
	batch[4].ID = "retry-id"
	res, err := s.AppendMessages(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	wantSeq := []int64{2, 0, 0, 3, 2, 4}
	wantErr := []error{nil, storage.ErrNotFound, storage.ErrNotMember, nil, nil, nil}
	for i, r := range res {
		if !errors.Is(r.Err, wantErr[i]) || (wantErr[i] == nil && r.Err != nil) {
			t.Errorf("item %d: err %v, want %v", i, r.Err, wantErr[i])
		}
		if r.Message.Seq != wantSeq[i] {
			t.Errorf("item %d: seq %d, want %d", i, r.Message.Seq, wantSeq[i])
		}
	}
	if !res[4].Duplicate || res[4].Message.ID != batch[0].ID {
		t.Errorf("in-batch duplicate: %+v, want duplicate of %s", res[4], batch[0].ID)
	}
	c, err := s.GetConversation(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if c.LastSeq != 4 {
		t.Errorf("LastSeq = %d, want 4", c.LastSeq)
	}
}

// TestAppendTwoNodes appends to the same conversations from two stores
// (two broker nodes) at once, with overlapping retries of the same client
// message ids; every message must be stored exactly once with gapless seqs.
func TestAppendTwoNodes(t *testing.T) {
	u := pgtest.FreshSchema(t)
	nodes := []*postgres.Store{openStore(t, u), openStore(t, u)}
	ctx := context.Background()
	setupGroup(t, nodes[0], "g1", "alice", "bob")
	setupGroup(t, nodes[0], "g2", "bob", "alice")

	const perWorker, batchSize = 60, 6
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for w := range 4 {
		s := nodes[w%2]
		// Workers 0 and 1 (2 and 3) send the same messages in opposite
		// orders, as a client retrying on another node would.
		sender := []string{"alice", "bob"}[w/2]
		wg.Go(func() {
			for i := 0; i < perWorker; i += batchSize {
				var batch []storage.NewMessage
				for k := range batchSize {
					j := i + k
					if w%2 == 1 {
						j = i + batchSize - 1 - k
					}
					conv := []string{"g1", "g2"}[j%2]
					batch = append(batch, textMessage(conv, sender, fmt.Sprintf("m%d", j)))
				}
				res, err := s.AppendMessages(ctx, batch)
				if err != nil {
					errc <- err
					return
				}
				for _, r := range res {
					if r.Err != nil {
						errc <- r.Err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}

	for _, conv := range []string{"g1", "g2"} {
		msgs, err := nodes[1].MessagesAfter(ctx, conv, 0, 1<<62, 0)
		if err != nil {
			t.Fatal(err)
		}
		// The creation note, then perWorker/2 messages from each sender.
		if want := 1 + perWorker; len(msgs) != want {
			t.Errorf("%s has %d messages, want %d", conv, len(msgs), want)
		}
		for i, m := range msgs {
			if m.Seq != int64(i+1) {
				t.Fatalf("%s: message %d has seq %d: not gapless", conv, i, m.Seq)
			}
		}
	}
}

// TestAppendRacesRemoval removes members while they send from another node:
// no message of a removed member may be stored after the removal note.
func TestAppendRacesRemoval(t *testing.T) {
	u := pgtest.FreshSchema(t)
	nodes := []*postgres.Store{openStore(t, u), openStore(t, u)}
	ctx := context.Background()
	senders := []string{"s0", "s1", "s2", "s3", "s4", "s5"}
	setupGroup(t, nodes[0], "g", append([]string{"owner"}, senders...)...)

	var wg sync.WaitGroup
	for _, sender := range senders {
		wg.Go(func() {
			for i := 0; ; i++ {
				res, err := nodes[0].AppendMessages(ctx, []storage.NewMessage{textMessage("g", sender, fmt.Sprint(i))})
				if err != nil {
					t.Error(err)
					return
				}
				if errors.Is(res[0].Err, storage.ErrNotMember) {
					return
				}
			}
		})
		wg.Go(func() {
			time.Sleep(20 * time.Millisecond)
			note := textMessage("g", "owner", "remove-"+sender)
			note.Kind = storage.MsgSystem
			if _, err := nodes[1].RemoveMember(ctx, "g", sender, note); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	for _, sender := range senders {
		m, err := nodes[0].GetMember(ctx, "g", sender)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := nodes[0].MessagesAfter(ctx, "g", m.UntilSeq, 1<<62, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range msgs {
			if msg.SenderID == sender {
				t.Errorf("%s removed at seq %d but has message seq %d", sender, m.UntilSeq, msg.Seq)
			}
		}
	}
}

// TestAdvanceCursorsFrom checks the From condition and per-conversation
// order of AdvanceCursors.
func TestAdvanceCursorsFrom(t *testing.T) {
	u := pgtest.FreshSchema(t)
	s := openStore(t, u)
	ctx := context.Background()
	setupGroup(t, s, "g", "alice", "bob")
	for i := range 9 {
		res, err := s.AppendMessages(ctx, []storage.NewMessage{textMessage("g", "bob", fmt.Sprint(i))})
		if err != nil || res[0].Err != nil {
			t.Fatal(err, res[0].Err)
		}
	}
	// g has seqs 1..10; alice's phone starts at 0.
	steps := []struct {
		updates []storage.CursorUpdate
		want    int64
	}{
		{[]storage.CursorUpdate{{ConvID: "g", From: 3, Seq: 5}}, 0},                                 // gap 1..3 not acknowledged
		{[]storage.CursorUpdate{{ConvID: "g", From: 0, Seq: 2}, {ConvID: "g", From: 2, Seq: 4}}, 4}, // in order
		{[]storage.CursorUpdate{{ConvID: "g", From: 4, Seq: 3}}, 4},                                 // never backwards
		{[]storage.CursorUpdate{{ConvID: "nope", From: 0, Seq: 3}, {ConvID: "g", From: 4, Seq: 10}}, 10},
	}
	for i, step := range steps {
		if _, err := s.AdvanceCursors(ctx, "alice", "phone", step.updates); err != nil {
			t.Fatal(err)
		}
		pending, err := s.PendingConversations(ctx, "alice", "phone")
		if err != nil {
			t.Fatal(err)
		}
		cursor := int64(10)
		if len(pending) > 0 {
			cursor = pending[0].Cursor
		}
		if cursor != step.want {
			t.Errorf("step %d: cursor %d, want %d", i, cursor, step.want)
		}
	}
	var n int
	if err := connect(t, u).QueryRow(ctx,
		"SELECT count(*) FROM device_cursors WHERE conv_id = 'nope'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("cursor stored for a conversation alice never belonged to")
	}
}
