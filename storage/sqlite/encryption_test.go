package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/msgrhq/msgr/storage"
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
