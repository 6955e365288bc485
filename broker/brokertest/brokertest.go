// Package brokertest runs a complete msgr broker in-process for tests: real
// listeners on 127.0.0.1, the embedded SQLite store in a temporary
// directory (or PostgreSQL, see WithPostgres), stopped on test cleanup.
package brokertest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/msgrhq/msgr/auth"
	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/keyring"
	"github.com/msgrhq/msgr/storage"
	"github.com/msgrhq/msgr/storage/postgres/pgtest"
)

// Broker is a running test broker.
type Broker struct {
	MQTTAddr string // host:port
	WSAddr   string
	HTTPAddr string
	DataDir  string
	// MQTTTLSAddr is the MQTT over TLS address when a certificate is
	// configured (WithConfig), else "".
	MQTTTLSAddr string

	cfg    broker.Config
	store  storage.Store
	b      *broker.Broker
	logOut io.Writer // nil: see logger
}

// Option changes the configuration before the broker starts.
type Option func(*broker.Config)

// WithConfig applies f to the broker configuration.
func WithConfig(f func(*broker.Config)) Option { return Option(f) }

// WithPostgres runs the broker on the PostgreSQL server named by
// MSGR_TEST_DATABASE_URL, in a fresh schema that is dropped when the test
// ends, so tests never see each other's data. It skips the test when
// MSGR_TEST_DATABASE_URL is unset; scripts/test.sh always sets it.
func WithPostgres(t testing.TB) Option {
	t.Helper()
	// Created now, before Start registers the broker's cleanup, so that the
	// broker stops before its schema is dropped.
	databaseURL := pgtest.FreshSchema(t)
	return func(c *broker.Config) { c.DatabaseURL = databaseURL }
}

// Start starts a broker on random ports; it is stopped when the test ends.
// Set MSGR_TEST_LOG=1 to see its log.
func Start(t testing.TB, opts ...Option) *Broker {
	t.Helper()
	return StartWithLog(t, nil, opts...)
}

// StartWithLog is Start with the broker's log, at debug level, written to
// w, for tests of what gets logged.
func StartWithLog(t testing.TB, w io.Writer, opts ...Option) *Broker {
	t.Helper()
	cfg := broker.DefaultConfig()
	cfg.MQTTAddr, cfg.WSAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.TLS.MQTTAddr = "127.0.0.1:0"
	// Tests send hundreds of messages in bulk and try many bad passwords
	// and tokens; tests of those limits set them with WithConfig. The other
	// limits keep their defaults.
	cfg.Limits.MessageRate, cfg.Limits.CommandRate = 0, 0
	cfg.Limits.LoginFailuresUser, cfg.Limits.LoginFailuresIP = 0, 0
	for _, o := range opts {
		o(&cfg)
	}
	// Every test broker gets a master key: PostgreSQL needs an explicit
	// one, and the embedded store's default file, made here in advance,
	// spares each test the "generated a new master key" warning.
	if cfg.MasterKeyFile == "" && cfg.MasterKey == "" {
		path := filepath.Join(cfg.DataDir, broker.DefaultMasterKeyFile)
		if cfg.DatabaseURL != "" {
			path = filepath.Join(t.TempDir(), "master.key")
			cfg.MasterKeyFile = path
		}
		if _, _, err := keyring.LoadOrCreateFile(path); err != nil {
			t.Fatalf("brokertest: master key: %v", err)
		}
	}
	tb := &Broker{cfg: cfg, DataDir: cfg.DataDir, logOut: w}
	tb.start(t)
	t.Cleanup(func() { tb.stop(t) })
	return tb
}

func (tb *Broker) start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := broker.OpenStore(ctx, tb.cfg)
	if err != nil {
		t.Fatalf("brokertest: open store: %v", err)
	}
	b, err := broker.New(tb.cfg, store, tb.logger())
	if err != nil {
		store.Close()
		t.Fatalf("brokertest: start broker: %v", err)
	}
	tb.store, tb.b = store, b
	tb.MQTTAddr, tb.WSAddr, tb.HTTPAddr = b.MQTTAddr(), b.WSAddr(), b.HTTPAddr()
	if tb.MQTTTLSAddr = b.MQTTTLSAddr(); tb.MQTTTLSAddr != "" {
		tb.cfg.TLS.MQTTAddr = tb.MQTTTLSAddr
	}
	// Restart reuses the ports.
	tb.cfg.MQTTAddr, tb.cfg.WSAddr, tb.cfg.HTTPAddr = tb.MQTTAddr, tb.WSAddr, tb.HTTPAddr
}

func (tb *Broker) stop(t testing.TB) {
	t.Helper()
	if tb.b == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tb.b.Close(ctx); err != nil {
		t.Errorf("brokertest: close broker: %v", err)
	}
	if err := tb.store.Close(); err != nil {
		t.Errorf("brokertest: close store: %v", err)
	}
	tb.b, tb.store = nil, nil
}

// Restart stops the broker and starts it again on the same data directory
// and ports.
func (tb *Broker) Restart(t testing.TB) {
	t.Helper()
	tb.stop(t)
	tb.start(t)
}

// Store is the broker's store, for assertions.
func (tb *Broker) Store() storage.Store { return tb.store }

// AddUser creates a user with a password.
func (tb *Broker) AddUser(t testing.TB, name, password string) {
	t.Helper()
	ctx := context.Background()
	// Cheap parameters keep test logins fast; the broker verifies a hash
	// with the parameters recorded in it.
	cheap := auth.Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}
	hash, err := auth.NewHasher(cheap, 1).Hash(ctx, password)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.store.CreateUser(ctx, storage.User{ID: name, PasswordHash: hash, CreatedAt: time.Now()}); err != nil {
		t.Fatalf("brokertest: add user %s: %v", name, err)
	}
}

func (tb *Broker) logger() *slog.Logger {
	if tb.logOut != nil {
		cfg := tb.cfg
		cfg.LogLevel = "debug"
		return cfg.NewLogger(tb.logOut)
	}
	if os.Getenv("MSGR_TEST_LOG") != "" {
		cfg := tb.cfg
		cfg.LogLevel = "debug"
		return cfg.NewLogger(os.Stderr)
	}
	return slog.New(slog.DiscardHandler)
}
