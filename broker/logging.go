package broker

import (
	"fmt"
	"log/slog"

	"github.com/mochi-mqtt/server/v2/packets"
)

// redactPackets replaces a logged packets.Packet with a summary that has no
// payload, properties or credentials.
func redactPackets(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() != slog.KindAny {
		return a
	}
	switch pk := a.Value.Any().(type) {
	case packets.Packet:
		return slog.String(a.Key, summary(&pk))
	case *packets.Packet:
		return slog.String(a.Key, summary(pk))
	}
	return a
}

func summary(pk *packets.Packet) string {
	return fmt.Sprintf("type=%d id=%d qos=%d topic=%q bytes=%d",
		pk.FixedHeader.Type, pk.PacketID, pk.FixedHeader.Qos, pk.TopicName, len(pk.Payload))
}
