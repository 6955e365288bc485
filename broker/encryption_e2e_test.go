package broker_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // raw reads of the embedded database

	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/broker/brokertest"
	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage"
	"github.com/msgrhq/msgr/storage/postgres/pgtest"
)

// secret is a marker that must never be found in the database or the logs.
const secret = "SECRET-MARKER-7f3a9c"

// rawBodies returns every stored message body, read around the store.
type rawBodies func(t *testing.T) [][]byte

func sqliteBodies(dataDir string) rawBodies {
	return func(t *testing.T) [][]byte {
		t.Helper()
		db, err := sql.Open("sqlite", filepath.Join(dataDir, "msgr.db")+"?_query_only=1")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rows, err := db.QueryContext(t.Context(), "SELECT body FROM messages")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out [][]byte
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
		return out
	}
}

func postgresBodies(databaseURL string) rawBodies {
	return func(t *testing.T) [][]byte {
		t.Helper()
		conn, err := pgx.Connect(t.Context(), databaseURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		rows, err := conn.Query(t.Context(), "SELECT body FROM messages")
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
}

// TestEncryptionAtRestEndToEnd sends through real sockets and checks that
// the database holds no plaintext while clients get plaintext, across a
// restart, and that a shredded conversation syncs as placeholders without
// wedging sync.
func TestEncryptionAtRestEndToEnd(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		b := brokertest.Start(t)
		fi, err := os.Stat(filepath.Join(b.DataDir, broker.DefaultMasterKeyFile))
		if err != nil {
			t.Fatalf("embedded master key: %v", err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("master key file permissions %o, want 600", fi.Mode().Perm())
		}
		testEncryptionEndToEnd(t, b, sqliteBodies(b.DataDir))
	})
	t.Run("postgres", func(t *testing.T) {
		u := pgtest.FreshSchema(t)
		b := brokertest.Start(t, brokertest.WithConfig(func(c *broker.Config) { c.DatabaseURL = u }))
		testEncryptionEndToEnd(t, b, postgresBodies(u))
	})
}

func testEncryptionEndToEnd(t *testing.T, b *brokertest.Broker, bodies rawBodies) {
	users(t, b, "alice", "bob")
	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	alice.next(protocol.EvSync)
	bob := dialV3(t, b, "bob", "phone", "pw-bob", v3Options{})
	bob.next(protocol.EvSync)

	sent := alice.send(protocol.Request{To: "bob", CMID: "m1", Body: text("the code is " + secret)})
	if m := bob.next(protocol.EvMessage).Msg; bodyText(t, *m) != "the code is "+secret {
		t.Fatalf("bob got %s, want the plaintext", m.Body)
	}
	checkNoSecret(t, bodies)

	b.Restart(t)
	laptop := dialV3(t, b, "bob", "laptop", "pw-bob", v3Options{})
	page := laptop.next(protocol.EvSync)
	if len(page.Msgs) != 1 || bodyText(t, page.Msgs[0]) != "the code is "+secret {
		t.Fatalf("sync after restart = %+v", page.Msgs)
	}

	n, err := b.Store().ShredConversation(t.Context(), sent.Conv)
	if err != nil || n != 1 {
		t.Fatalf("ShredConversation = %d, %v", n, err)
	}
	tablet := dialV3(t, b, "bob", "tablet", "pw-bob", v3Options{})
	page = tablet.next(protocol.EvSync)
	if len(page.Msgs) != 1 || !bytes.Equal(page.Msgs[0].Body, storage.ShreddedBody) || page.Msgs[0].Seq != 1 {
		t.Fatalf("sync of a shredded conversation = %+v", page.Msgs)
	}
	// The conversation goes on; the device is not stuck on the shredded seq.
	alice = dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	alice.next(protocol.EvSync)
	alice.send(protocol.Request{Conv: sent.Conv, CMID: "m2", Body: text("new key " + secret)})
	if m := tablet.next(protocol.EvMessage).Msg; m.Seq != 2 || bodyText(t, *m) != "new key "+secret {
		t.Fatalf("tablet got %+v after the shred", m)
	}
	checkNoSecret(t, bodies)
}

func checkNoSecret(t *testing.T, bodies rawBodies) {
	t.Helper()
	all := bodies(t)
	if len(all) == 0 {
		t.Fatal("no message rows found")
	}
	for _, body := range all {
		if bytes.Contains(body, []byte(secret)) || bytes.Contains(body, []byte(`"text"`)) {
			t.Fatalf("stored body is plaintext: %q", body)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the broker's concurrent logging.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestFailingCommandsDoNotLogBodies sends commands that fail in every layer
// (JSON, validation, store, ACL) carrying a marker, and checks that the
// debug log never contains it.
func TestFailingCommandsDoNotLogBodies(t *testing.T) {
	var log syncBuffer
	b := brokertest.StartWithLog(t, &log)
	users(t, b, "alice", "bob")
	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	alice.next(protocol.EvSync)

	// Unknown recipient: fails in the store lookup.
	alice.request(protocol.OpSend, protocol.Request{To: "nobody", CMID: "x1", Body: text(secret)})
	alice.next(protocol.EvError)
	// Unknown conversation.
	alice.request(protocol.OpSend, protocol.Request{Conv: "no-such-conv", CMID: "x2", Body: text(secret)})
	alice.next(protocol.EvError)
	// Not JSON.
	alice.command(protocol.OpSend, []byte("{"+secret))
	alice.next(protocol.EvError)
	// Unknown fields and a body type that cannot be sent.
	req, _ := json.Marshal(map[string]any{"v": protocol.Version, "to": "bob", "cmid": "x3", "body": map[string]string{"type": "system", "text": secret}})
	alice.command(protocol.OpSend, req)
	alice.next(protocol.EvError)
	// A message that works.
	alice.send(protocol.Request{To: "bob", CMID: "ok", Body: text(secret)})
	// Last, as it may cost the connection: another user's command topic,
	// denied by the ACL (mochi logs hook refusals with the packet).
	alice.publish(protocol.CommandTopic("bob", protocol.OpSend), []byte(secret), time.Second)

	b.Restart(t) // flushes whatever the shutdown logs
	out := log.String()
	// The path of concern was taken: mochi logged the refused packet.
	if !strings.Contains(out, "error processing packet") {
		t.Fatalf("mochi did not log the refused packet; log:\n%s", out)
	}
	if strings.Contains(out, secret) {
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, secret) {
				t.Errorf("log line contains a message body: %s", line)
			}
		}
	}
}
