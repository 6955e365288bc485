package postgres_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/msgrhq/msgr/storage"
	"github.com/msgrhq/msgr/storage/postgres"
	"github.com/msgrhq/msgr/storage/postgres/pgtest"
	"github.com/msgrhq/msgr/storage/storetest"
)

// encryptionDB is a fresh schema with a raw connection next to the store.
type encryptionDB struct {
	url string
	raw *pgx.Conn
}

func (db *encryptionDB) Open(t *testing.T, sealer storage.Sealer) (storage.Store, error) {
	var opts []postgres.Option
	if sealer != nil {
		opts = append(opts, postgres.WithSealer(sealer))
	}
	s, err := postgres.Open(t.Context(), db.url, opts...)
	if err != nil {
		return nil, err // a nil *Store would make a non-nil storage.Store
	}
	return s, nil
}

func (db *encryptionDB) RawBody(t *testing.T, convID string, seq int64) []byte {
	t.Helper()
	var body []byte
	if err := db.raw.QueryRow(t.Context(), "SELECT body FROM messages WHERE conv_id = $1 AND seq = $2", convID, seq).Scan(&body); err != nil {
		t.Fatalf("raw body of %s/%d: %v", convID, seq, err)
	}
	return body
}

func (db *encryptionDB) SetRawBody(t *testing.T, convID string, seq int64, body []byte) {
	t.Helper()
	tag, err := db.raw.Exec(t.Context(), "UPDATE messages SET body = $3 WHERE conv_id = $1 AND seq = $2", convID, seq, body)
	if err != nil {
		t.Fatalf("set raw body of %s/%d: %v", convID, seq, err)
	}
	if tag.RowsAffected() != 1 {
		t.Fatalf("set raw body of %s/%d: %d rows", convID, seq, tag.RowsAffected())
	}
}

func TestEncryption(t *testing.T) {
	storetest.RunEncryption(t, func(t *testing.T) storetest.EncryptionDB {
		u := pgtest.FreshSchema(t)
		return &encryptionDB{url: u, raw: connect(t, u)}
	})
}

// TestUpgradeFromV1Encrypts opens a schema-v1 database holding plaintext
// messages with a master key: the upgrade keeps the v1 data and encrypts
// the bodies in place.
func TestUpgradeFromV1Encrypts(t *testing.T) {
	u := pgtest.FreshSchema(t)
	ctx := t.Context()
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
	for seq := int64(1); seq <= 6; seq++ {
		if _, err := conn.Exec(ctx, `INSERT INTO messages (conv_id, seq, id, sender_id, sender_device, client_msg_id, kind, body, created_at)
			VALUES ('ab', $1, $2, 'alice', 'phone', $3, 'text', $4, now())`, seq, fmt.Sprint("m", seq), fmt.Sprint("c", seq), storetest.V1Message(seq)); err != nil {
			t.Fatal(err)
		}
	}

	s := openStore(t, u)
	storetest.CheckUpgradedFromV1(t, s)
	db := &encryptionDB{url: u, raw: conn}
	storetest.CheckUpgradedV1Messages(t, s, func(seq int64) []byte { return db.RawBody(t, "ab", seq) })
}
