package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/keyring"
	"github.com/msgrhq/msgr/storage"
)

// msgrd runs the command in-process and returns its output.
func msgrd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(t.Context(), args, strings.NewReader(""), &out, &errOut)
	return out.String() + errOut.String(), err
}

func openWith(t *testing.T, dataDir, keyFile string) (storage.Store, error) {
	t.Helper()
	cfg := broker.DefaultConfig()
	cfg.DataDir, cfg.MasterKeyFile = dataDir, keyFile
	return broker.OpenStore(t.Context(), cfg)
}

// TestKeysCommands walks the operator's path on the embedded store: a
// generated key, rotation to a new key, shredding a conversation.
func TestKeysCommands(t *testing.T) {
	if os.Getenv("MSGR_MASTER_KEY") != "" || os.Getenv("MSGR_MASTER_KEY_FILE") != "" {
		t.Skip("a master key in the environment would override the test's")
	}
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	newKey := filepath.Join(dir, "new.key")

	out, err := msgrd(t, "keys", "generate", newKey)
	if err != nil || !strings.Contains(out, "written to "+newKey) {
		t.Fatalf("keys generate: %v\n%s", err, out)
	}
	if fi, err := os.Stat(newKey); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("generated key file: %v %v", fi, err)
	}
	if out, err := msgrd(t, "keys", "generate", newKey); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second keys generate: %v\n%s", err, out)
	}

	// First start of the embedded store makes data/master.key.
	s, err := openWith(t, dataDir, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, u := range []string{"alice", "bob"} {
		if err := s.CreateUser(ctx, storage.User{ID: u, PasswordHash: "h", CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	conv, _, err := s.DirectConversation(ctx, "alice", "bob", "ab", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"type":"text","text":"hello"}`)
	if _, err := s.AppendMessages(ctx, []storage.NewMessage{{ConvID: conv.ID, ID: "m1", SenderID: "alice", SenderDevice: "d",
		ClientMsgID: "c1", Kind: storage.MsgText, Body: body, CreatedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	oldKey, err := keyring.LoadFile(filepath.Join(dataDir, broker.DefaultMasterKeyFile))
	if err != nil {
		t.Fatal(err)
	}

	out, err = msgrd(t, "keys", "id", "-data-dir", dataDir)
	if err != nil || strings.TrimSpace(out) != keyring.KeyID(oldKey) {
		t.Fatalf("keys id = %q, %v; want %s", out, err, keyring.KeyID(oldKey))
	}
	if out, err := msgrd(t, "keys", "rotate", "-data-dir", dataDir); err == nil || !strings.Contains(err.Error(), "--new-master-key-file is required") {
		t.Fatalf("keys rotate without a new key: %v\n%s", err, out)
	}
	out, err = msgrd(t, "keys", "rotate", "-data-dir", dataDir, "-new-master-key-file", newKey)
	if err != nil || !strings.Contains(out, "rewrapped 1 data key") {
		t.Fatalf("keys rotate: %v\n%s", err, out)
	}

	// The old key no longer opens the database; the new one does.
	if s, err := openWith(t, dataDir, ""); err == nil {
		s.Close()
		t.Fatal("the retired master key still opens the store")
	} else if !errors.Is(err, storage.ErrWrongMasterKey) || !strings.Contains(err.Error(), keyring.KeyID(oldKey)) {
		t.Fatalf("open with the retired key: %v", err)
	}
	readBody := func() []byte {
		t.Helper()
		s, err := openWith(t, dataDir, newKey)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		msgs, err := s.MessagesAfter(context.Background(), conv.ID, 0, 10, 0)
		if err != nil || len(msgs) != 1 {
			t.Fatalf("MessagesAfter: %v, %d messages", err, len(msgs))
		}
		return msgs[0].Body
	}
	if got := readBody(); !bytes.Equal(got, body) {
		t.Fatalf("after rotation the body is %q", got)
	}

	out, err = msgrd(t, "keys", "shred", conv.ID, "-data-dir", dataDir, "-master-key-file", newKey)
	if err != nil || !strings.Contains(out, "1 data key(s) deleted") {
		t.Fatalf("keys shred: %v\n%s", err, out)
	}
	if got := readBody(); !bytes.Equal(got, storage.ShreddedBody) {
		t.Fatalf("after shredding the body is %q", got)
	}
	if out, err := msgrd(t, "keys", "shred", "nope", "-data-dir", dataDir, "-master-key-file", newKey); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("keys shred of an unknown conversation: %v\n%s", err, out)
	}
	if _, err := msgrd(t, "keys", "frobnicate"); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Fatalf("unknown keys verb: %v", err)
	}
}
