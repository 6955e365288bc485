package broker_test

import (
	"testing"

	"github.com/msgrhq/msgr/broker/brokertest"
	"github.com/msgrhq/msgr/protocol"
)

// TestPostgresEndToEnd runs a conversation through a broker on PostgreSQL:
// live delivery, offline sync, and a broker restart that keeps messages and
// idempotency keys.
func TestPostgresEndToEnd(t *testing.T) {
	b := brokertest.Start(t, brokertest.WithPostgres(t))
	users(t, b, "alice", "bob")
	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	alice.next(protocol.EvSync)

	first := alice.send(protocol.Request{To: "bob", CMID: "m1", Body: text("hi bob")})
	if first.Seq != 1 || first.Dup {
		t.Fatalf("first send = %+v", first)
	}
	if m := alice.next(protocol.EvMessage).Msg; m.Seq != 1 || m.ID != first.ID {
		t.Fatalf("alice's inbox got %+v, want seq 1 id %s", m, first.ID)
	}
	second := alice.send(protocol.Request{Conv: first.Conv, CMID: "m2", Body: text("are you there?")})
	if second.Seq != 2 {
		t.Fatalf("second send = %+v", second)
	}

	alice.c.Disconnect(250) // the phone goes offline; the laptop carries on
	b.Restart(t)
	laptop := dialV3(t, b, "alice", "laptop", "pw-alice", v3Options{})
	laptop.next(protocol.EvSync)
	bob := dialV3(t, b, "bob", "phone", "pw-bob", v3Options{})
	page := bob.next(protocol.EvSync)
	if len(page.Msgs) != 2 || page.More {
		t.Fatalf("bob's sync page has %d messages (more %v), want 2", len(page.Msgs), page.More)
	}
	for i, want := range []string{"hi bob", "are you there?"} {
		if m := page.Msgs[i]; m.Seq != int64(i+1) || m.From != "alice" || bodyText(t, m) != want {
			t.Errorf("sync message %d = %+v", i, m)
		}
	}

	// The idempotency key survived the restart.
	if dup := laptop.send(protocol.Request{Conv: first.Conv, CMID: "m1", Body: text("hi bob")}); !dup.Dup || dup.Seq != 1 || dup.ID != first.ID {
		t.Fatalf("retry of m1 = %+v, want the original seq 1 as a duplicate", dup)
	}
	third := bob.send(protocol.Request{Conv: first.Conv, CMID: "b1", Body: text("here")})
	if third.Seq != 3 {
		t.Fatalf("bob's reply = %+v, want seq 3", third)
	}
	if m := laptop.next(protocol.EvMessage).Msg; m.Seq != 3 || m.From != "bob" {
		t.Fatalf("alice's laptop got %+v, want bob's seq 3", m)
	}
}
