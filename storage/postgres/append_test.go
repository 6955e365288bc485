package postgres_test

import (
	"context"
	"fmt"
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

// TestStoreOtherPaths runs the conformance suite with every AppendMessages
// batch written by COPY (the path larger batches take) and every duplicate
// found by the retry after a unique violation (TestStore's stores read
// duplicates first for a while after meeting one).
func TestStoreOtherPaths(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storage.Store {
		s := openStore(t, pgtest.FreshSchema(t))
		postgres.SetCopyMin(s, 1)
		postgres.SetDupProbeWindow(s, 0)
		return s
	})
}

// TestAppendDuplicateRetry checks a batch mixing new messages with
// duplicates of stored ones on both write paths, with the duplicates found
// by the retry (window 0) and by the read after an earlier duplicate: the
// results and the stored history are the same.
func TestAppendDuplicateRetry(t *testing.T) {
	for _, tc := range []struct {
		name    string
		copyMin int
		window  time.Duration
	}{
		{"insert/retry", 1 << 30, 0},
		{"copy/retry", 1, 0},
		{"insert/read", 1 << 30, time.Hour},
		{"copy/read", 1, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, pgtest.FreshSchema(t))
			postgres.SetCopyMin(s, tc.copyMin)
			postgres.SetDupProbeWindow(s, tc.window)
			ctx := context.Background()
			setupGroup(t, s, "g", "alice", "bob")
			first := []storage.NewMessage{textMessage("g", "alice", "a1"), textMessage("g", "bob", "b1")}
			if _, err := s.AppendMessages(ctx, first); err != nil {
				t.Fatal(err)
			}
			for round := range 2 { // the second round's batch is all duplicates
				batch := []storage.NewMessage{
					textMessage("g", "alice", "a2"),
					textMessage("g", "bob", "b1"),   // stored
					textMessage("g", "alice", "a1"), // stored
					textMessage("g", "bob", "b2"),
				}
				batch[1].ID = "retry-id"
				res, err := s.AppendMessages(ctx, batch)
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				wantSeq := []int64{4, 3, 2, 5}
				wantDup := []bool{round == 1, true, true, round == 1}
				for i, r := range res {
					if r.Err != nil || r.Message.Seq != wantSeq[i] || r.Duplicate != wantDup[i] {
						t.Errorf("round %d item %d: seq %d duplicate %v err %v, want seq %d duplicate %v",
							round, i, r.Message.Seq, r.Duplicate, r.Err, wantSeq[i], wantDup[i])
					}
				}
				if res[1].Message.ID != "id-bob-b1" || string(res[1].Message.Body) != string(first[1].Body) {
					t.Errorf("round %d: duplicate returned %+v, want the stored message", round, res[1].Message)
				}
			}
			msgs, err := s.MessagesAfter(ctx, "g", 0, 1<<62, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) != 5 || msgs[4].Seq != 5 {
				t.Errorf("history has %d messages, want 5 with gapless seqs: %+v", len(msgs), msgs)
			}
			rs, err := s.Receipts(ctx, "g")
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rs { // alice sent seq 4, bob seq 5
				if want := map[string]int64{"alice": 4, "bob": 5}[r.UserID]; r.Read != want || r.Delivered != want {
					t.Errorf("receipt %+v, want delivered and read %d", r, want)
				}
			}
		})
	}
}

// TestAppendPipelineFailure makes each statement after the reads fail (a
// trigger raises) and checks that AppendMessages reports the failed
// statement, commits nothing of the batch, and leaves the store usable.
func TestAppendPipelineFailure(t *testing.T) {
	// Each trigger raises for the client message id 'boom' only.
	stages := []struct {
		name, stage, trigger string
	}{
		{"insert", "", `CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN IF NEW.client_msg_id = 'boom' THEN RAISE EXCEPTION 'boom insert'; END IF; RETURN NEW; END $$;
			CREATE TRIGGER boom BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION boom()`},
		{"finish", "advance conversations and senders", `CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN IF EXISTS (SELECT FROM messages WHERE conv_id = NEW.conv_id AND client_msg_id = 'boom') THEN
				RAISE EXCEPTION 'boom finish'; END IF; RETURN NEW; END $$;
			CREATE TRIGGER boom BEFORE UPDATE ON members FOR EACH ROW EXECUTE FUNCTION boom()`},
		{"commit", "commit", `CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN IF NEW.client_msg_id = 'boom' THEN RAISE EXCEPTION 'boom commit'; END IF; RETURN NEW; END $$;
			CREATE CONSTRAINT TRIGGER boom AFTER INSERT ON messages DEFERRABLE INITIALLY DEFERRED
				FOR EACH ROW EXECUTE FUNCTION boom()`},
	}
	for _, path := range []struct {
		name    string
		copyMin int
		insert  string // the stage name of the insert
	}{{"insert", 1 << 30, "insert"}, {"copy", 1, "copy"}} {
		for _, tc := range stages {
			t.Run(path.name+"/"+tc.name, func(t *testing.T) {
				u := pgtest.FreshSchema(t)
				s := openStore(t, u)
				postgres.SetCopyMin(s, path.copyMin)
				ctx := context.Background()
				setupGroup(t, s, "g", "alice", "bob")
				setupGroup(t, s, "h", "bob", "alice")
				res, err := s.AppendMessages(ctx, []storage.NewMessage{textMessage("g", "alice", "first")})
				if err != nil || res[0].Err != nil {
					t.Fatal(err, res[0].Err)
				}
				conn := connect(t, u)
				if _, err := conn.Exec(ctx, tc.trigger); err != nil {
					t.Fatal(err)
				}
				before := appendSnapshot(t, conn)

				batch := []storage.NewMessage{
					textMessage("h", "bob", "fine"),
					textMessage("g", "alice", "ok"),
					textMessage("g", "alice", "boom"),
				}
				_, err = s.AppendMessages(ctx, batch)
				stage := tc.stage
				if stage == "" {
					stage = path.insert
				}
				if err == nil || !strings.Contains(err.Error(), "append messages: "+stage+": ") ||
					!strings.Contains(err.Error(), "boom "+tc.name) {
					t.Fatalf("AppendMessages error = %v, want the %s stage failing with boom %s", err, stage, tc.name)
				}
				if after := appendSnapshot(t, conn); after != before {
					t.Errorf("a failed batch changed the store:\nbefore %s\nafter  %s", before, after)
				}

				// The same messages without the failing one go through, with
				// the seqs the failed batch would have taken.
				for range 3 { // more appends than a pool needs to reuse the connection
					res, err = s.AppendMessages(ctx, batch[:2])
					if err != nil {
						t.Fatalf("append after a failed batch: %v", err)
					}
				}
				if res[0].Message.Seq != 2 || res[1].Message.Seq != 3 || !res[1].Duplicate {
					t.Errorf("after the failure: %+v", res)
				}
			})
		}
	}
}

// appendSnapshot describes what an append changes: the conversations'
// last seqs and times, the messages and the members' receipts.
func appendSnapshot(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var snap string
	err := conn.QueryRow(context.Background(), `SELECT
		(SELECT string_agg(format('%s:%s:%s', id, last_seq, last_at), ' ' ORDER BY id) FROM conversations) || ' | ' ||
		(SELECT string_agg(format('%s:%s', conv_id, seq), ' ' ORDER BY conv_id, seq) FROM messages) || ' | ' ||
		(SELECT string_agg(format('%s/%s:%s:%s', conv_id, user_id, delivered_seq, read_seq), ' ' ORDER BY conv_id, user_id) FROM members)`).
		Scan(&snap)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// TestAppendLocksWithReceipts appends batches that span the same group
// conversations from two nodes, in varying orders and from several
// senders, while acknowledgement flushes (AdvanceCursorsBatch, several
// users' rows in one transaction), AdvanceCursors and MarkRead raise the
// same members rows. A lock-order mistake shows as a deadlock error
// (40P01); at the end every conversation's seqs are gapless and every
// sender's receipts are at least their newest message.
func TestAppendLocksWithReceipts(t *testing.T) {
	u := pgtest.FreshSchema(t)
	nodes := []*postgres.Store{openStore(t, u), openStore(t, u)}
	ctx := context.Background()
	users := []string{"u0", "u1", "u2", "u3"}
	convs := []string{"c0", "c1", "c2", "c3", "c4", "c5"}
	for _, c := range convs {
		setupGroup(t, nodes[0], c, users...)
	}

	const rounds = 25
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		newest = make(map[[2]string]int64) // (conversation, sender) -> newest seq
		sent   = make(map[string]int)      // conversation -> messages stored
	)
	errc := make(chan error, 16)
	for w := range 4 {
		s := nodes[w%2]
		wg.Go(func() {
			for r := range rounds {
				// Each worker walks the conversations from its own starting
				// point and direction, with every sender in each batch.
				var batch []storage.NewMessage
				for i := range convs {
					c := convs[(w*2+i)%len(convs)]
					if w%2 == 1 {
						c = convs[(len(convs)-1-i+w)%len(convs)]
					}
					for k, user := range users {
						if (r+k+w)%2 == 0 {
							batch = append(batch, textMessage(c, user, fmt.Sprintf("w%d-r%d", w, r)))
						}
					}
				}
				res, err := s.AppendMessages(ctx, batch)
				if err != nil {
					errc <- fmt.Errorf("append: %w", err)
					return
				}
				mu.Lock()
				for _, x := range res {
					if x.Err != nil {
						mu.Unlock()
						errc <- x.Err
						return
					}
					k := [2]string{x.Message.ConvID, x.Message.SenderID}
					newest[k] = max(newest[k], x.Message.Seq)
					sent[x.Message.ConvID]++
				}
				mu.Unlock()
			}
		})
	}
	for n := range nodes {
		s := nodes[n]
		wg.Go(func() { // acknowledgement flushes: every user's devices at once
			for range rounds {
				var batch []storage.DeviceCursors
				for _, user := range users {
					var updates []storage.CursorUpdate
					for _, c := range convs {
						updates = append(updates, storage.CursorUpdate{ConvID: c, Seq: 1 << 40})
					}
					batch = append(batch, storage.DeviceCursors{UserID: user, DeviceID: fmt.Sprint("flush-", n), Updates: updates})
				}
				if _, err := s.AdvanceCursorsBatch(ctx, batch); err != nil {
					errc <- fmt.Errorf("advance cursors batch: %w", err)
					return
				}
			}
		})
		wg.Go(func() { // one device's acknowledgements and reads
			user := users[n]
			for range rounds {
				var updates []storage.CursorUpdate
				for _, c := range convs {
					updates = append(updates, storage.CursorUpdate{ConvID: c, Seq: 1 << 40})
				}
				if _, err := s.AdvanceCursors(ctx, user, "phone", updates); err != nil {
					errc <- fmt.Errorf("advance cursors: %w", err)
					return
				}
				for _, c := range convs {
					if _, _, err := s.MarkRead(ctx, user, c, 1<<40); err != nil {
						errc <- fmt.Errorf("mark read: %w", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	for _, c := range convs {
		msgs, err := nodes[1].MessagesAfter(ctx, c, 0, 1<<62, 0)
		if err != nil {
			t.Fatal(err)
		}
		if want := 1 + sent[c]; len(msgs) != want { // the creation note first
			t.Errorf("%s has %d messages, want %d", c, len(msgs), want)
		}
		for i, m := range msgs {
			if m.Seq != int64(i+1) {
				t.Fatalf("%s: message %d has seq %d: not gapless", c, i, m.Seq)
			}
		}
		rs, err := nodes[1].Receipts(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if want := newest[[2]string{c, r.UserID}]; r.Read < want || r.Delivered < want {
				t.Errorf("%s: %s's receipt %+v is below their newest message %d", c, r.UserID, r, want)
			}
		}
	}
}
