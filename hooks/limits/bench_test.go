package limits

import (
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/msgrhq/msgr/protocol"
)

// BenchmarkOnPublishSend is the limits hook's cost per send command that
// passes both rates: topic parse, identity, two token buckets.
// go test -run '^$' -bench . -benchmem ./hooks/limits
func BenchmarkOnPublishSend(b *testing.B) {
	h := New(Options{Config: Config{MessageRate: 1e9, MessageBurst: 1 << 20, CommandRate: 1e9, CommandBurst: 1 << 20}})
	srv := mqtt.New(nil)
	cl := srv.NewClient(nil, "tcp", "alice/phone", false)
	cl.Properties.Username = []byte("alice")
	cl.Properties.ProtocolVersion = 5
	pk := packets.Packet{TopicName: protocol.CommandTopic("alice", protocol.OpSend), Payload: []byte(`{"v":1}`)}
	pk.FixedHeader.Qos = 1
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.OnPublish(cl, pk); err != nil {
			b.Fatal(err)
		}
	}
}
