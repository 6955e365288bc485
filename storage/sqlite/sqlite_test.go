package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/msgrhq/msgr/storage"
	"github.com/msgrhq/msgr/storage/migrate"
	"github.com/msgrhq/msgr/storage/storetest"
)

// open opens the store as the broker does: encrypting, here under a new
// random master key.
func open(t testing.TB, path string) *Store {
	t.Helper()
	return openKey(t, path, storetest.NewMasterKey(t))
}

// openKey opens the store encrypting under master key key.
func openKey(t testing.TB, path string, key []byte) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, WithSealer(storetest.NewSealer(t, key)))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storage.Store {
		return open(t, filepath.Join(t.TempDir(), "msgr.db"))
	})
}

func TestPragmas(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "msgr.db"))
	ctx := t.Context()
	checks := []struct {
		db     string
		pragma string
		want   string
	}{
		{"writer", "journal_mode", "wal"},
		{"writer", "synchronous", "2"}, // FULL
		{"writer", "foreign_keys", "1"},
		{"writer", "busy_timeout", fmt.Sprint(busyTimeout.Milliseconds())},
		{"reader", "query_only", "1"},
		{"reader", "busy_timeout", fmt.Sprint(busyTimeout.Milliseconds())},
	}
	for _, c := range checks {
		db := s.w
		if c.db == "reader" {
			db = s.r
		}
		var got string
		if err := db.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
			t.Fatalf("%s PRAGMA %s: %v", c.db, c.pragma, err)
		}
		if got != c.want {
			t.Errorf("%s PRAGMA %s = %s, want %s", c.db, c.pragma, got, c.want)
		}
	}
	if _, err := s.r.ExecContext(ctx, `INSERT INTO users (id, password_hash, created_at) VALUES ('x', 'y', 0)`); err == nil {
		t.Error("reader pool accepted a write")
	}
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "msgr.db")
	ctx := t.Context()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.CreateUser(ctx, storage.User{ID: "alice", PasswordHash: "h", CreatedAt: time.UnixMilli(1)}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, path)
	if _, err := s.GetUser(ctx, "alice"); err != nil {
		t.Fatalf("GetUser after reopen: %v", err)
	}
	var n, version int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &version); err != nil {
		t.Fatal(err)
	}
	if n != version || version < 1 {
		t.Errorf("schema_migrations has %d rows up to version %d; want one per version", n, version)
	}
}

// TestUpgradeFromV1 opens a database created by the first schema version,
// with data: the receipts migration must keep it and derive Delivered from
// the device cursors.
func TestUpgradeFromV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "msgr.db")
	ctx := t.Context()
	all, err := migrate.Load(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		all[0].SQL,
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`,
		`INSERT INTO schema_migrations VALUES (1, '0001_init.sql', 0)`,
		`INSERT INTO users (id, password_hash, created_at) VALUES ('alice', 'h', 0), ('bob', 'h', 0)`,
		`INSERT INTO conversations (id, kind, created_by, created_at, last_seq, last_at) VALUES ('ab', 'direct', 'alice', 0, 6, 0)`,
		`INSERT INTO direct_pairs (user_lo, user_hi, conv_id) VALUES ('alice', 'bob', 'ab')`,
		`INSERT INTO members (conv_id, user_id, role, from_seq, joined_at) VALUES ('ab', 'alice', 'member', 1, 0), ('ab', 'bob', 'member', 1, 0)`,
		`INSERT INTO device_cursors (user_id, device_id, conv_id, seq) VALUES ('alice', 'phone', 'ab', 3), ('alice', 'laptop', 'ab', 5)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := open(t, path)
	storetest.CheckUpgradedFromV1(t, s)
}

func TestRefuseNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "msgr.db")
	s := open(t, path)
	if _, err := s.w.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	if s2, err := Open(t.Context(), path); err == nil {
		s2.Close()
		t.Fatal("Open succeeded on a database newer than the binary")
	}
}

func TestOpenRejectsNonFilePaths(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:x.db", "x.db?mode=ro"} {
		if s, err := Open(t.Context(), p); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", p)
		}
	}
}

// TestTwoProcesses opens the same file twice, as two msgr processes would,
// and appends from both at once: the file lock and busy timeout must keep
// seqs gapless across processes too.
func TestTwoProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "msgr.db")
	ctx := t.Context()
	key := storetest.NewMasterKey(t)
	stores := []*Store{openKey(t, path, key), openKey(t, path, key)}
	for _, id := range []string{"alice", "bob"} {
		if err := stores[0].CreateUser(ctx, storage.User{ID: id, PasswordHash: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := stores[0].DirectConversation(ctx, "alice", "bob", "ab", time.Now()); err != nil {
		t.Fatal(err)
	}
	const perStore = 50
	var wg sync.WaitGroup
	errs := make([]error, len(stores))
	for i, s := range stores {
		wg.Go(func() {
			for j := range perStore {
				res, err := s.AppendMessages(ctx, []storage.NewMessage{{
					ConvID: "ab", ID: fmt.Sprintf("p%d-%d", i, j), SenderID: "alice", SenderDevice: "d",
					ClientMsgID: fmt.Sprintf("p%d-%d", i, j), Kind: storage.MsgText, Body: []byte("{}"), CreatedAt: time.Now(),
				}})
				if err == nil {
					err = res[0].Err
				}
				if err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := stores[1].MessagesAfter(ctx, "ab", 0, 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2*perStore {
		t.Fatalf("%d messages, want %d", len(msgs), 2*perStore)
	}
	for i, m := range msgs {
		if m.Seq != int64(i+1) {
			t.Fatalf("msgs[%d].Seq = %d", i, m.Seq)
		}
	}
}

func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := open(b, filepath.Join(b.TempDir(), "msgr.db"))
			ctx := context.Background()
			for _, id := range []string{"alice", "bob"} {
				if err := s.CreateUser(ctx, storage.User{ID: id, PasswordHash: "h"}); err != nil {
					b.Fatal(err)
				}
			}
			if _, _, err := s.DirectConversation(ctx, "alice", "bob", "ab", time.Now()); err != nil {
				b.Fatal(err)
			}
			body := []byte(`{"text":"a typical short chat message, about a hundred bytes long, give or take a few"}`)
			batch := make([]storage.NewMessage, size)
			n := 0
			for b.Loop() {
				for i := range batch {
					n++
					id := fmt.Sprintf("m%d", n)
					batch[i] = storage.NewMessage{ConvID: "ab", ID: id, SenderID: "alice", SenderDevice: "phone",
						ClientMsgID: id, Kind: storage.MsgText, Body: body, CreatedAt: time.Now()}
				}
				res, err := s.AppendMessages(ctx, batch)
				if err != nil {
					b.Fatal(err)
				}
				if res[size-1].Err != nil {
					b.Fatal(res[size-1].Err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
