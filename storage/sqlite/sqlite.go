// Package sqlite is msgr's embedded default store: storage.Store on a single
// SQLite database file, using the pure-Go modernc.org/sqlite driver so that
// msgr stays one static binary.
//
// SQLite allows one writer at a time. Rather than letting several pooled
// connections contend for the write lock (and fail or spin on SQLITE_BUSY),
// all writes go through one connection, so database/sql queues them in
// process; every write transaction starts with BEGIN IMMEDIATE so it holds
// the lock from its first statement and never has to upgrade a read lock.
// Reads use a separate pool of query_only connections: in WAL mode readers
// see the last committed state and neither block nor wait for the writer.
//
// Acknowledged messages must survive a crash of the operating system, so
// the database runs with synchronous=FULL, which in WAL mode syncs the log on
// every commit. Throughput comes from batching: AppendMessages stores a
// whole batch in one transaction, i.e. one sync.
//
// Times are stored as INTEGER unix milliseconds and read back in UTC.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"runtime"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/msgrhq/msgr/storage"
	"github.com/msgrhq/msgr/storage/migrate"
	"github.com/msgrhq/msgr/storage/seal"
)

//go:embed migrations/*.sql
var migrations embed.FS

// busyTimeout bounds how long a connection waits for a lock held by another
// process (another msgr or a backup tool) before failing with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// Store is a storage.Store backed by one SQLite database file.
type Store struct {
	w      *sql.DB        // the single write connection
	r      *sql.DB        // read-only pool
	sealer storage.Sealer // nil: bodies stay plaintext
	keys   *seal.KeyCache // conversations' current data keys
	log    *slog.Logger
}

var _ storage.Store = (*Store)(nil)

// Open opens (creating if needed) the database file at path, whose directory
// must exist, and applies pending schema migrations. With WithSealer it then
// checks the master key and encrypts any plaintext message bodies left from
// before encryption at rest.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	if path == "" || strings.ContainsRune(path, '?') || strings.HasPrefix(path, ":memory:") || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: open %q: path must be a plain database file name", path)
	}
	w, err := openDB(path, url.Values{
		"_journal_mode": {"WAL"},
		"_synchronous":  {"FULL"},
		"_foreign_keys": {"1"},
		"_txlock":       {"immediate"},
	}, 1)
	if err != nil {
		return nil, err
	}
	if err := applyMigrations(ctx, w); err != nil {
		w.Close()
		return nil, err
	}
	// The reader pool opens after the writer has created the file and
	// switched it to WAL, which is persistent, so readers need not (and, being
	// query_only, could not) set the journal mode themselves.
	r, err := openDB(path, url.Values{"_query_only": {"1"}}, max(4, runtime.GOMAXPROCS(0)))
	if err != nil {
		w.Close()
		return nil, err
	}
	s := &Store{w: w, r: r, keys: seal.NewKeyCache(0), log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(s)
	}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.openEncryption(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func openDB(path string, params url.Values, conns int) (*sql.DB, error) {
	params.Set("_busy_timeout", fmt.Sprint(busyTimeout.Milliseconds()))
	db, err := sql.Open("sqlite", path+"?"+params.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %q: %w", path, err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	// Connections are cheap to keep and pragmas are per connection; never
	// recycle them behind our back.
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	return db, nil
}

// applyMigrations brings the schema up to date in one transaction. BEGIN
// IMMEDIATE (the write connection's default) takes the write lock first, so
// a second process opening the same file waits and then sees the new version.
func applyMigrations(ctx context.Context, db *sql.DB) error {
	all, err := migrate.Load(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	return inTx(ctx, db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			name       TEXT    NOT NULL,
			applied_at INTEGER NOT NULL
		)`); err != nil {
			return fmt.Errorf("sqlite: migrate: %w", err)
		}
		var current int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return fmt.Errorf("sqlite: migrate: %w", err)
		}
		pending, err := migrate.Pending(all, current)
		if err != nil {
			return fmt.Errorf("sqlite: migrate: %w", err)
		}
		for _, m := range pending {
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return fmt.Errorf("sqlite: migrate %s: %w", m.Name, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.Version, m.Name, time.Now().UnixMilli()); err != nil {
				return fmt.Errorf("sqlite: migrate %s: %w", m.Name, err)
			}
		}
		return nil
	})
}

// Ping checks that both the write connection and the read pool work.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping writer: %w", err)
	}
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping readers: %w", err)
	}
	return nil
}

// Close closes all connections.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// inTx runs fn in a write transaction and commits it unless fn fails.
func inTx(ctx context.Context, db *sql.DB, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// isConstraint reports whether err is an SQLite constraint violation of one
// of the given extended result codes.
func isConstraint(err error, codes ...int) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	for _, c := range codes {
		if e.Code() == c {
			return true
		}
	}
	return false
}

func isUniqueViolation(err error) bool {
	return isConstraint(err, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE)
}

func isForeignKeyViolation(err error) bool {
	return isConstraint(err, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY)
}

func toMillis(t time.Time) int64 { return t.UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// nullMillis stores the zero time, which means "never", as NULL.
func nullMillis(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: toMillis(t), Valid: true}
}
