package stats

import (
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/msgrhq/msgr/protocol"
)

type countRecorder struct{ delivered int }

func (*countRecorder) Connected(byte)            {}
func (*countRecorder) Disconnected(byte)         {}
func (*countRecorder) Command(string)            {}
func (r *countRecorder) Delivered(time.Duration) { r.delivered++ }

// BenchmarkPubackOfMessage is the stats hook's cost per recipient PUBACK
// of a message event (inflight lookup, JSON decode of the timestamp).
// go test -run '^$' -bench . -benchmem ./hooks/stats
func BenchmarkPubackOfMessage(b *testing.B) {
	rec := &countRecorder{}
	h := New(rec, nil)
	cl := mqtt.New(nil).NewClient(nil, "tcp", "bob/phone", false)
	out := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:   protocol.InboxTopic("bob"),
		PacketID:    7,
		Payload: []byte(`{"v":1,"type":"message","msg":{"conv":"01JDQ3Z4N7ZK8Y1X2W3V4T5S6R","seq":42,"id":"01JDQ3Z4N7ZK8Y1X2W3V4T5S6S",` +
			`"from":"alice","dev":"phone","cmid":"01JDQ3Z4N7ZK8Y1X2W3V4T5S6T","ts":1795995334470,"body":{"type":"text","text":"hello there, how are you?"}}}`),
	}
	cl.State.Inflight.Set(out)
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: 7}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = h.OnPacketRead(cl, ack)
	}
	if rec.delivered == 0 {
		b.Fatal("nothing recorded")
	}
}
