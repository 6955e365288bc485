package postgres_test

import (
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
