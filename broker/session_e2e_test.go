package broker_test

import (
	"fmt"
	"testing"

	"github.com/msgrhq/msgr/broker/brokertest"
	"github.com/msgrhq/msgr/protocol"
)

// A device resuming a persistent session while the broker holds deliveries
// for it re-subscribes with packet ids mochi has in flight; the subscription
// must still succeed and every message must arrive (live or through sync).
func TestPersistentSessionResumeWithQueuedDeliveries(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice", "bob")
	bob := dialV3(t, b, "bob", "phone", "pw-bob", v3Options{persistent: true})
	bob.next(protocol.EvSync)
	bob.c.Disconnect(0)

	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	const n = 20
	var conv string
	for i := 1; i <= n; i++ {
		conv = alice.send(protocol.Request{To: "bob", CMID: fmt.Sprintf("m%d", i), Body: text("queued")}).Conv
	}

	bob = dialV3(t, b, "bob", "phone", "pw-bob", v3Options{persistent: true, noSub: true})
	codes := bob.subscribe(protocol.InboxTopic("bob"), protocol.DeviceTopic("bob", "phone"))
	for i, c := range codes {
		if c != 1 {
			t.Fatalf("resubscribe %d granted 0x%02x, want QoS 1", i, c)
		}
	}
	seen := map[int64]bool{}
	for len(seen) < n {
		ev := bob.next(protocol.EvMessage, protocol.EvSync)
		if ev.Msg != nil {
			seen[ev.Msg.Seq] = true
		}
		for _, m := range ev.Msgs {
			seen[m.Seq] = true
		}
	}
	for seq := int64(1); seq <= n; seq++ {
		if !seen[seq] {
			t.Fatalf("seq %d of %s never arrived", seq, conv)
		}
	}
}
