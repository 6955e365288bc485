package sqlite

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/msgrhq/msgr/storage"
	"github.com/msgrhq/msgr/storage/migrate"
	"github.com/msgrhq/msgr/storage/storetest"
)

// encryptionDB is a database file with a raw connection next to the store.
type encryptionDB struct {
	path string
	raw  *sql.DB
}

func (db *encryptionDB) Open(t *testing.T, sealer storage.Sealer) (storage.Store, error) {
	var opts []Option
	if sealer != nil {
		opts = append(opts, WithSealer(sealer))
	}
	s, err := Open(t.Context(), db.path, opts...)
	if err != nil {
		return nil, err // a nil *Store would make a non-nil storage.Store
	}
	return s, nil
}

func (db *encryptionDB) RawBody(t *testing.T, convID string, seq int64) []byte {
	t.Helper()
	var body []byte
	if err := db.raw.QueryRowContext(t.Context(), "SELECT body FROM messages WHERE conv_id = ? AND seq = ?", convID, seq).Scan(&body); err != nil {
		t.Fatalf("raw body of %s/%d: %v", convID, seq, err)
	}
	return body
}

func (db *encryptionDB) SetRawBody(t *testing.T, convID string, seq int64, body []byte) {
	t.Helper()
	res, err := db.raw.ExecContext(t.Context(), "UPDATE messages SET body = ? WHERE conv_id = ? AND seq = ?", body, convID, seq)
	if err != nil {
		t.Fatalf("set raw body of %s/%d: %v", convID, seq, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("set raw body of %s/%d: %d rows", convID, seq, n)
	}
}

func TestEncryption(t *testing.T) {
	storetest.RunEncryption(t, func(t *testing.T) storetest.EncryptionDB {
		path := filepath.Join(t.TempDir(), "msgr.db")
		raw, err := sql.Open("sqlite", path+"?_busy_timeout=10000")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { raw.Close() })
		return &encryptionDB{path: path, raw: raw}
	})
}

// TestUpgradeFromV1Encrypts opens a schema-v1 database holding plaintext
// messages with a master key: the upgrade keeps the v1 data and encrypts
// the bodies in place.
func TestUpgradeFromV1Encrypts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "msgr.db")
	ctx := t.Context()
	all, err := migrate.Load(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", path+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
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
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for seq := int64(1); seq <= 6; seq++ {
		if _, err := raw.ExecContext(ctx, `INSERT INTO messages (conv_id, seq, id, sender_id, sender_device, client_msg_id, kind, body, created_at)
			VALUES ('ab', ?, ?, 'alice', 'phone', ?, 'text', ?, 0)`, seq, fmt.Sprint("m", seq), fmt.Sprint("c", seq), storetest.V1Message(seq)); err != nil {
			t.Fatal(err)
		}
	}

	s := open(t, path)
	storetest.CheckUpgradedFromV1(t, s)
	db := &encryptionDB{path: path, raw: raw}
	storetest.CheckUpgradedV1Messages(t, s, func(seq int64) []byte { return db.RawBody(t, "ab", seq) })
}
