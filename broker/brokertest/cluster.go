package brokertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/keyring"
	"github.com/msgrhq/msgr/storage/postgres/pgtest"
)

// RedisURL returns MSGR_TEST_REDIS_URL or skips the test; scripts/test.sh
// always sets it (it starts a throwaway redis-server).
func RedisURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("MSGR_TEST_REDIS_URL")
	if u == "" {
		tb.Skip("MSGR_TEST_REDIS_URL is not set; run ./scripts/test.sh, which starts a throwaway redis-server")
	}
	return u
}

// Cluster is what the nodes of one test share: a fresh PostgreSQL schema
// and a fresh Redis key prefix, so that tests running in parallel on the
// same servers never see each other.
type Cluster struct {
	DatabaseURL   string
	RedisURL      string
	Prefix        string
	MasterKeyFile string        // one master key: the nodes share the encrypted store
	TTL           time.Duration // registry TTL of every node
}

// NewCluster prepares a cluster for t; it skips the test when
// MSGR_TEST_DATABASE_URL or MSGR_TEST_REDIS_URL is unset.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	redisURL := RedisURL(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	key := filepath.Join(t.TempDir(), "master.key")
	if _, _, err := keyring.LoadOrCreateFile(key); err != nil {
		t.Fatalf("brokertest: master key: %v", err)
	}
	return &Cluster{
		DatabaseURL:   pgtest.FreshSchema(t),
		RedisURL:      redisURL,
		Prefix:        "t" + hex.EncodeToString(b),
		MasterKeyFile: key,
		TTL:           2 * time.Second,
	}
}

// Node returns the option that makes a broker node id of the cluster.
func (c *Cluster) Node(id string) Option {
	return func(cfg *broker.Config) {
		cfg.DatabaseURL = c.DatabaseURL
		cfg.MasterKeyFile = c.MasterKeyFile
		cfg.RedisURL = c.RedisURL
		cfg.RedisPrefix = c.Prefix
		cfg.Security.NodeID = id
		cfg.ClusterTTL = c.TTL
	}
}

// Crash stops the broker abruptly (see broker.Broker.Crash): connections
// dropped, no cluster cleanup. The test's cleanup does nothing more.
func (tb *Broker) Crash(t testing.TB) {
	t.Helper()
	if tb.b == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tb.b.Crash(ctx)
	if err := tb.store.Close(); err != nil {
		t.Errorf("brokertest: close store: %v", err)
	}
	tb.b, tb.store = nil, nil
}

// Stop stops the broker gracefully, as on SIGTERM, before the test ends.
func (tb *Broker) Stop(t testing.TB) {
	t.Helper()
	tb.stop(t)
}
