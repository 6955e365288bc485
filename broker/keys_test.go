package broker_test

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/keyring"
)

func TestLoadKeyring(t *testing.T) {
	dir := t.TempDir()
	key := bytes.Repeat([]byte{7}, keyring.KeySize)
	keyFile := filepath.Join(dir, "given.key")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	prevKey := bytes.Repeat([]byte{8}, keyring.KeySize)
	prevFile := filepath.Join(dir, "prev.key")
	if err := os.WriteFile(prevFile, prevKey, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		change    func(*broker.Config)
		wantID    string
		generated bool
		wantErr   string
	}{
		{name: "file", change: func(c *broker.Config) { c.MasterKeyFile = keyFile }, wantID: keyring.KeyID(key)},
		{name: "env value", change: func(c *broker.Config) { c.MasterKey = base64.StdEncoding.EncodeToString(key) }, wantID: keyring.KeyID(key)},
		{name: "embedded default", change: func(c *broker.Config) { c.DataDir = filepath.Join(dir, "data") }, generated: true},
		{name: "postgres needs a key", change: func(c *broker.Config) { c.DatabaseURL = "postgres://x/y" }, wantErr: "required with database-url"},
		{name: "bad env value", change: func(c *broker.Config) { c.MasterKey = "short" }, wantErr: "MSGR_MASTER_KEY: keyring: master key"},
		{name: "missing file", change: func(c *broker.Config) { c.MasterKeyFile = filepath.Join(dir, "nope") }, wantErr: "master-key-file"},
		{name: "bad previous", change: func(c *broker.Config) { c.MasterKeyFile, c.PreviousMasterKeyFile = keyFile, filepath.Join(dir, "nope") }, wantErr: "previous-master-key-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := broker.DefaultConfig()
			tt.change(&cfg)
			ring, generated, err := broker.LoadKeyring(cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadKeyring: %v, want error containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "short") {
					t.Fatalf("error %q quotes the key", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantID != "" && ring.ID() != tt.wantID {
				t.Errorf("ID %s, want %s", ring.ID(), tt.wantID)
			}
			if (generated != "") != tt.generated {
				t.Fatalf("generated %q", generated)
			}
			if tt.generated {
				fi, err := os.Stat(generated)
				if err != nil || fi.Mode().Perm() != 0o600 {
					t.Fatalf("generated key file: %v, %v", fi, err)
				}
				again, gen2, err := broker.LoadKeyring(cfg)
				if err != nil || gen2 != "" || again.ID() != ring.ID() {
					t.Fatalf("second start: %v, generated %q, id %s vs %s", err, gen2, again.ID(), ring.ID())
				}
			}
		})
	}

	cfg := broker.DefaultConfig()
	cfg.MasterKeyFile, cfg.PreviousMasterKeyFile = keyFile, prevFile
	ring, _, err := broker.LoadKeyring(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ring.ID() != keyring.KeyID(key) || !ring.Has(keyring.KeyID(prevKey)) {
		t.Errorf("keyring %v: want current %s and previous %s", ring, keyring.KeyID(key), keyring.KeyID(prevKey))
	}
}
