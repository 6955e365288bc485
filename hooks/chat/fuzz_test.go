package chat

import (
	"encoding/json"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/msgrhq/msgr/protocol"
)

// requestSeeds is one valid payload per command, and some broken ones.
var requestSeeds = map[protocol.Op][]string{
	protocol.OpSend: {
		`{"v":1,"id":"r1","to":"bob","cmid":"m1","body":{"type":"text","text":"hi"}}`,
		`{"v":1,"conv":"01JDQ3Z4N7ZK8Y1X2W3V4T5S6R","cmid":"m2","body":{"type":"text","text":"\u00e9"}}`,
		`{"v":1,"to":"bob","cmid":"m1","body":{"type":"text","text":"hi"}}{"x":1}`,
		`{"v":2,"to":"bob"}`, `{"v":1,"id":7}`, `{"v":1,"bogus":true}`,
	},
	protocol.OpSync:          {`{"v":1,"id":"s","limit":100,"ack":[{"conv":"c","from":1,"seq":2}]}`},
	protocol.OpAck:           {`{"v":1,"ack":[{"conv":"c","seq":9}]}`},
	protocol.OpHistory:       {`{"v":1,"conv":"c","before":10,"limit":20}`},
	protocol.OpDirect:        {`{"v":1,"user":"bob"}`},
	protocol.OpGroupCreate:   {`{"v":1,"title":"t","members":["bob","carol"]}`},
	protocol.OpGroupAdd:      {`{"v":1,"conv":"c","user":"dave","role":"admin"}`},
	protocol.OpGroupRemove:   {`{"v":1,"conv":"c","user":"dave"}`},
	protocol.OpGroupLeave:    {`{"v":1,"conv":"c"}`},
	protocol.OpGroupRole:     {`{"v":1,"conv":"c","user":"dave","role":"member"}`},
	protocol.OpConversations: {`{"v":1,"limit":5}`},
	protocol.OpConversation:  {`{"v":1,"conv":"c"}`},
	protocol.OpRead:          {`{"v":1,"conv":"c","seq":4}`},
	protocol.OpReceipts:      {`{"v":1,"conv":"c"}`},
	protocol.OpTyping:        {`{"v":1,"conv":"c"}`},
	protocol.OpPresence:      {`{"v":1,"users":["bob"]}`},
	protocol.OpSettings:      {`{"v":1,"presence":"nobody","read_receipts":false}`},
	"nope":                   {`{"v":1}`},
}

// decode, the broker's parser of every command payload, never panics,
// refuses with a protocol error, and accepts only requests that carry the
// current version, a bounded id, a known op and only that op's fields.
func FuzzDecodeRequest(f *testing.F) {
	for op, payloads := range requestSeeds {
		for _, p := range payloads {
			f.Add(string(op), []byte(p))
		}
	}
	h := &Hook{opts: Options{MaxPayloadBytes: 4096}}
	f.Fuzz(func(t *testing.T, op string, payload []byte) {
		req, perr := h.decode(packets.Packet{Payload: payload}, protocol.Op(op))
		if len(req.ID) > protocol.MaxIDLen {
			t.Fatalf("echoed id of %d bytes", len(req.ID))
		}
		if perr != nil {
			if perr.Code == "" || perr.Message == "" {
				t.Fatalf("error without code or message: %+v", perr)
			}
			if len(payload) > 4096 && perr.Code != protocol.CodeTooLarge {
				t.Fatalf("oversize payload refused with %s", perr.Code)
			}
			return
		}
		if len(payload) > 4096 || req.V != protocol.Version || !protocol.Op(op).Known() {
			t.Fatalf("accepted op %q payload %q as %+v", op, payload, req)
		}
		if err := checkFields(protocol.Op(op), req); err != nil {
			t.Fatalf("accepted a field %s does not take: %v", op, err)
		}
	})
}

// deliveredRanges reads the broker's own outbound payloads, but must still
// survive anything and produce only well-formed cursor ranges.
func FuzzDeliveredRanges(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"type":"message","msg":{"conv":"c","seq":3}}`,
		`{"v":1,"type":"sync","msgs":[{"conv":"c","seq":1},{"conv":"c","seq":2},{"conv":"d","seq":7}]}`,
		`{"v":1,"type":"sync","req":"r","msgs":[{"conv":"c","seq":1}]}`,
		`{"v":1,"type":"message","msg":{"conv":"c","seq":-4}}`,
		`{"type":"sync","msgs":[{"conv":"c","seq":0},{"conv":"c","seq":-1}]}`, `null`, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		for _, c := range deliveredRanges(payload) {
			if c.From >= c.Seq {
				t.Fatalf("range (%d, %d] from %q", c.From, c.Seq, payload)
			}
		}
		acks := deliveredRanges(payload)
		merged := mergeRanges(append([]protocol.Cursor(nil), acks...))
		if len(merged) > len(acks) {
			t.Fatalf("merging %v gave more ranges: %v", acks, merged)
		}
		_, _ = json.Marshal(merged)
	})
}
