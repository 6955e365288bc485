package stats

import (
	"encoding/json"
	"testing"

	"github.com/msgrhq/msgr/protocol"
)

// messageTS agrees with a full decode, whatever the message holds.
func FuzzMessageTS(f *testing.F) {
	f.Add("01JD", "phone", "c-1", int64(1795995334470), `{"type":"text","text":"\"ts\":5"}`)
	f.Add("c", "d", `x","ts":9`, int64(1), `{"type":"text","text":"hi"}`)
	f.Fuzz(func(t *testing.T, conv, dev, cmid string, ts int64, body string) {
		if !json.Valid([]byte(body)) {
			return
		}
		payload, err := json.Marshal(protocol.Event{V: 1, Type: protocol.EvMessage, Msg: &protocol.Message{
			Conv: conv, Seq: 1, ID: "i", From: "a", Dev: dev, CMID: cmid, TS: ts, Body: json.RawMessage(body),
		}})
		if err != nil {
			return
		}
		got, ok := messageTS(payload)
		if ts > 0 && (!ok || got != ts) {
			t.Fatalf("messageTS(%s) = %d, %v; want %d", payload, got, ok, ts)
		}
		if ts <= 0 && ok {
			t.Fatalf("messageTS(%s) = %d for ts %d", payload, got, ts)
		}
	})
}
