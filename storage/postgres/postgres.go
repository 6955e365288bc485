// Package postgres implements storage.Store on PostgreSQL with pgx.
//
// It is the production store: messages are hash-partitioned by conversation
// (see docs/ARCHITECTURE.md) and several broker nodes may share one database.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/msgrhq/msgr/storage"
	"github.com/msgrhq/msgr/storage/migrate"
	"github.com/msgrhq/msgr/storage/seal"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the pg_advisory_xact_lock key ("msgrmigr") that
// serializes schema migrations of nodes starting at the same time.
const migrationLock int64 = 0x6d7367726d696772

// SQLSTATE codes mapped to storage errors.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
)

// defaultConnectTimeout bounds each connection attempt (TCP connect, TLS,
// startup) when the URL sets no connect_timeout. pgx has no default: a
// database host that accepts connections but never answers made Open, and
// so msgrd's start, hang forever, and pool connections opened during an
// outage waited for their callers' deadlines.
const defaultConnectTimeout = 5 * time.Second

// Store is a storage.Store backed by a PostgreSQL connection pool.
type Store struct {
	pool    *pgxpool.Pool
	sealer  storage.Sealer // nil: bodies stay plaintext
	keys    *seal.KeyCache // conversations' current data keys
	log     *slog.Logger
	copyMin int // AppendMessages writes batches of this many new messages with COPY

	dupProbeWindow time.Duration // see AppendMessages
	dupProbeUntil  atomic.Int64  // Unix ns until which AppendMessages reads duplicates first
}

var _ storage.Store = (*Store)(nil)

// Open connects to databaseURL (a postgres:// URL or key=value DSN), checks
// the server answers and applies pending schema migrations. With
// WithSealer it then checks the master key and encrypts any plaintext
// message bodies left from before encryption at rest.
func Open(ctx context.Context, databaseURL string, opts ...Option) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse database url: %w", err)
	}
	// Statements name their conversation, user or device through
	// parameters. With custom plans PostgreSQL re-plans every execution
	// over the partitioned messages table (it prefers them because they
	// prune partitions at plan time), which costs more than executing;
	// generic plans prune at executor start-up instead. A setting in the
	// URL wins.
	if _, ok := cfg.ConnConfig.RuntimeParams["plan_cache_mode"]; !ok {
		cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	}
	if cfg.ConnConfig.ConnectTimeout <= 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	// pgxpool's default, max(4, CPUs), is too few for a broker whose
	// writers, acknowledgement flushes, fan-out lookups and logins all
	// need a connection at once; a pool_max_conns in the URL wins.
	if !strings.Contains(databaseURL, "pool_max_conns") {
		cfg.MaxConns = defaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: cannot reach %s:%d database %q: %w",
			cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	s := &Store{pool: pool, keys: seal.NewKeyCache(0), log: slog.New(slog.DiscardHandler),
		copyMin: defaultCopyMin, dupProbeWindow: defaultDupProbeWindow}
	for _, o := range opts {
		o(s)
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if err := s.openEncryption(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// migrate applies the embedded migrations in one transaction. The advisory
// lock makes a second node wait and then find the schema current, instead of
// both creating the same tables.
func (s *Store) migrate(ctx context.Context) error {
	all, err := migrate.Load(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLock); err != nil {
			return fmt.Errorf("postgres: lock migrations: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    int PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return fmt.Errorf("postgres: create schema_migrations: %w", err)
		}
		var current int
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&current); err != nil {
			return fmt.Errorf("postgres: read schema version: %w", err)
		}
		pending, err := migrate.Pending(all, current)
		if err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		for _, m := range pending {
			// Exec without arguments uses the simple protocol, which runs
			// multi-statement files.
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("postgres: migration %s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
				return fmt.Errorf("postgres: record migration %s: %w", m.Name, err)
			}
		}
		return nil
	})
}

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Close closes every connection of the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// inTx runs fn in a transaction, committing when fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

func hasCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// dbTime returns t as PostgreSQL stores and returns it (microseconds, UTC),
// so values a method returns equal the ones later reads return.
func dbTime(t time.Time) time.Time {
	return t.Truncate(time.Microsecond).UTC()
}

// noLimit turns the contract's "0 = no limit" into SQL's LIMIT NULL.
func noLimit(limit int) *int {
	if limit <= 0 {
		return nil
	}
	return &limit
}

// defaultMaxConns is the pool size unless the URL sets pool_max_conns.
const defaultMaxConns = 16
