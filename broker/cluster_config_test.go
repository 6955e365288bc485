package broker_test

import (
	"flag"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/keyring"
	"github.com/msgrhq/msgr/storage/postgres/pgtest"
)

func TestClusterConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
		check   func(t *testing.T, c broker.Config)
	}{
		{name: "single node by default", check: func(t *testing.T, c broker.Config) {
			if c.RedisURL != "" || c.ClusterTTL != 15*time.Second || c.RedisPrefix != "msgr" {
				t.Errorf("defaults: %q %v %q", c.RedisURL, c.ClusterTTL, c.RedisPrefix)
			}
		}},
		{name: "from the environment", env: map[string]string{"MSGR_REDIS_URL": "redis://r:6379/0", "MSGR_NODE_ID": "n-1", "MSGR_CLUSTER_TTL": "30s", "MSGR_REDIS_PREFIX": "prod"},
			check: func(t *testing.T, c broker.Config) {
				if c.RedisURL != "redis://r:6379/0" || c.Security.NodeID != "n-1" || c.ClusterTTL != 30*time.Second || c.RedisPrefix != "prod" {
					t.Errorf("got %q %q %v %q", c.RedisURL, c.Security.NodeID, c.ClusterTTL, c.RedisPrefix)
				}
			}},
		{name: "cluster on the embedded store", args: []string{"--redis-url", "redis://r:6379"}, wantErr: "cluster mode needs a database-url"},
		{name: "sentinel", args: []string{"--redis-url", "redis+sentinel://s1:26379?master_name=m"}},
		{name: "cluster", args: []string{"--redis-url", "redis+cluster://c1:7000?addr=c2:7000"}},
		{name: "bad scheme", args: []string{"--redis-url", "memcached://x:1"}, wantErr: "redis-url: invalid redis url"},
		{name: "sentinel without master", args: []string{"--redis-url", "redis+sentinel://s1:26379"}, wantErr: "needs master_name"},
		{name: "bad node id", args: []string{"--redis-url", "redis://r:6379", "--node-id", "a|b"}, wantErr: "node-id: invalid node id"},
		{name: "bad prefix", args: []string{"--redis-prefix", ""}, wantErr: "redis-prefix: invalid node id"},
		{name: "ttl too short", args: []string{"--cluster-ttl", "100ms"}, wantErr: "cluster-ttl: 100ms is outside 1s..10m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := broker.DefaultConfig()
			if tt.name != "cluster on the embedded store" {
				c.DatabaseURL, c.MasterKeyFile = "postgres://u@h/db", "/k"
			}
			fs := flag.NewFlagSet("msgrd", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			err := c.Parse(fs, tt.args, func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestClusterRedisUnreachable(t *testing.T) {
	c := broker.DefaultConfig()
	c.MQTTAddr, c.WSAddr, c.HTTPAddr = "127.0.0.1:0", "", ""
	c.DatabaseURL = pgtest.FreshSchema(t)
	c.MasterKeyFile = filepath.Join(t.TempDir(), "master.key")
	if _, _, err := keyring.LoadOrCreateFile(c.MasterKeyFile); err != nil {
		t.Fatal(err)
	}
	c.RedisURL = "redis://127.0.0.1:1/0?dial_timeout=200ms"
	store, err := broker.OpenStore(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := broker.New(c, store, nil); err == nil || !strings.Contains(err.Error(), "cluster: redis") {
		t.Fatalf("New with an unreachable Redis: %v, want a cluster error", err)
	}
}
