package broker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/msgrhq/msgr/broker/brokertest"
	"github.com/msgrhq/msgr/protocol"
)

// eventually polls the broker's metrics until ok accepts them.
func eventually(t *testing.T, b *brokertest.Broker, what string, ok func(map[string]float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		m := scrape(t, b)
		if ok(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics: %s never happened: %v", what, m)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestMetricsFollowTraffic(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice", "bob")
	before := scrape(t, b)
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "msgr_messages_stored_total", "msgr_store_commit_seconds_count"} {
		if _, ok := before[name]; !ok {
			t.Errorf("metric %s missing before traffic", name)
		}
	}
	if before["msgr_messages_stored_total"] != 0 {
		t.Fatalf("stored before traffic: %v", before["msgr_messages_stored_total"])
	}

	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	alice.next(protocol.EvSync)
	bob := dialV3(t, b, "bob", "phone", "pw-bob", v3Options{})
	bob.next(protocol.EvSync)
	const n = 5
	for i := range n {
		alice.send(protocol.Request{ID: fmt.Sprint(i), To: "bob", CMID: fmt.Sprint(i), Body: text("metrics")})
		bob.next(protocol.EvMessage)
	}
	// Bob's device acknowledged them: alice gets a delivered receipt.
	alice.next(protocol.EvReceipt)
	// Bob answers, which makes the two contacts (presence), and reads.
	sent := bob.send(protocol.Request{ID: "r", To: "alice", CMID: "r", Body: text("reply")})
	bob.request(protocol.OpRead, protocol.Request{Conv: sent.Conv, Seq: sent.Seq})
	if ev := bob.next(protocol.EvOK, protocol.EvError); ev.Type != protocol.EvOK {
		t.Fatalf("read: %+v", ev.Error)
	}
	// An invalid command counts as an error by kind.
	bob.command(protocol.OpSend, []byte(`{"v":1,"to":"alice"}`))
	bob.next(protocol.EvError)

	m := eventually(t, b, "deliveries, receipts and the error", func(m map[string]float64) bool {
		// Not every delivery's PUBACK is seen: mochi drops an outbound
		// delivery whose packet id a client's own publish reuses (see
		// docs/ARCHITECTURE.md); sync covers those.
		return m["msgr_messages_delivered_total"] >= 2*n && m[`msgr_events_published_total{type="receipt"}`] > 0 &&
			m[`msgr_errors_total{kind="chat_bad_request"}`] == 1
	})
	for name, want := range map[string]float64{
		"msgr_messages_received_total":        n + 2, // the invalid send counts as received
		"msgr_messages_stored_total":          n + 1,
		"msgr_messages_published_total":       2 * (n + 1),
		`msgr_commands_total{op="send"}`:      n + 2,
		`msgr_commands_total{op="read"}`:      1,
		`msgr_connections{version="4"}`:       2,
		`msgr_connections_total{version="4"}`: 2,
	} {
		if m[name] != want {
			t.Errorf("%s = %v, want %v", name, m[name], want)
		}
	}
	if c := m["msgr_store_commit_seconds_count"]; c < 1 || c > n+1 {
		t.Errorf("commits %v for %d messages", c, n+1)
	}
	if m["msgr_store_batch_messages_sum"] != n+1 {
		t.Errorf("batch sizes sum to %v, want %d", m["msgr_store_batch_messages_sum"], n+1)
	}
	if c := m["msgr_delivery_latency_seconds_count"]; c != m["msgr_messages_delivered_total"] || c < 2*n {
		t.Errorf("delivery latency count %v, delivered %v", c, m["msgr_messages_delivered_total"])
	}

	// Bob leaves: alice, a contact, gets a presence event; the gauge drops.
	bob.c.Disconnect(100)
	eventually(t, b, "presence event and disconnect", func(m map[string]float64) bool {
		return m[`msgr_events_published_total{type="presence"}`] > 0 && m[`msgr_connections{version="4"}`] == 1
	})
}
