// Package stats is the mochi hook that observes connections, chat commands
// and delivery acknowledgements for the broker's metrics. It never changes
// what the broker does.
package stats

import (
	"bytes"
	"strconv"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/msgrhq/msgr/protocol"
)

// Recorder receives the observations (metrics.Metrics implements it).
type Recorder interface {
	Connected(protocolVersion byte)
	Disconnected(protocolVersion byte)
	Command(op string)
	Delivered(latency time.Duration)
}

// Hook feeds a Recorder.
type Hook struct {
	mqtt.HookBase
	rec Recorder
	now func() time.Time
}

// New returns the hook; now is time.Now when nil.
func New(rec Recorder, now func() time.Time) *Hook {
	if now == nil {
		now = time.Now
	}
	return &Hook{rec: rec, now: now}
}

// ID implements mqtt.Hook.
func (h *Hook) ID() string { return "msgr-stats" }

// Provides implements mqtt.Hook.
func (h *Hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnPublish, mqtt.OnPacketRead:
		return true
	}
	return false
}

// OnSessionEstablished counts the connection.
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.rec.Connected(cl.Properties.ProtocolVersion)
}

// OnDisconnect counts the end of an established connection (mochi calls
// it only for those).
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.rec.Disconnected(cl.Properties.ProtocolVersion)
}

// OnPublish counts chat commands by op; unknown ops share one label so that
// clients cannot grow the label set.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	if t := protocol.ParseTopic(pk.TopicName); t.Kind == protocol.TopicCommand {
		op := string(t.Op)
		if !t.Op.Known() {
			op = "unknown"
		}
		h.rec.Command(op)
	}
	return pk, nil
}

// messageEventPrefix starts every message event: protocol.Event encodes
// v, then type, first.
var messageEventPrefix = []byte(`{"v":1,"type":"message"`)

// OnPacketRead records a device's PUBACK of a live message event: the
// delivered packet is still in the client's inflight store here (see
// hooks/chat/delivered.go).
func (h *Hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Puback {
		return pk, nil
	}
	out, ok := cl.State.Inflight.Get(pk.PacketID)
	if !ok || out.FixedHeader.Type != packets.Publish || !bytes.HasPrefix(out.Payload, messageEventPrefix) {
		return pk, nil
	}
	if protocol.ParseTopic(out.TopicName).Kind != protocol.TopicInbox {
		return pk, nil
	}
	ts, ok := messageTS(out.Payload)
	if !ok {
		return pk, nil
	}
	h.rec.Delivered(h.now().Sub(time.UnixMilli(ts)))
	return pk, nil
}

var tsKey = []byte(`"ts":`)

// messageTS reads msg.ts from an encoded message event without decoding
// it (a full decode cost 3 µs per PUBACK). protocol.Message encodes ts
// before the body, and no string before it can hold the bytes "ts": (a
// quote inside a JSON string is escaped), so the first match is the field.
func messageTS(payload []byte) (int64, bool) {
	i := bytes.Index(payload, tsKey)
	if i < 0 {
		return 0, false
	}
	rest := payload[i+len(tsKey):]
	end := 0
	for end < len(rest) && end < 19 && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	if end == 0 || end == len(rest) || (rest[end] != ',' && rest[end] != '}') {
		return 0, false
	}
	ts, err := strconv.ParseInt(string(rest[:end]), 10, 64)
	if err != nil || ts <= 0 {
		return 0, false
	}
	return ts, true
}
