// Package session is a mochi hook that works around mochi v2.7.9 sharing one
// packet-identifier space between a client's requests and the broker's
// deliveries to it (see docs/ARCHITECTURE.md, "mochi caveats").
//
// A client that resumes a persistent session numbers its packets from 1
// again while the broker still holds queued deliveries under the same
// identifiers; mochi then refuses its SUBSCRIBE or UNSUBSCRIBE with 0x91
// "packet identifier in use" and the client cannot resume. The delivery is
// only the fast path (its message is in the store and comes back through
// sync), so the hook drops it and lets the client's request through.
package session

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Hook frees packet identifiers a client's request reuses.
type Hook struct {
	mqtt.HookBase
}

// ID implements mqtt.Hook.
func (h *Hook) ID() string { return "msgr-session" }

// Provides implements mqtt.Hook.
func (h *Hook) Provides(b byte) bool { return b == mqtt.OnPacketRead }

// OnPacketRead runs before mochi checks the identifier.
func (h *Hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	switch pk.FixedHeader.Type {
	case packets.Subscribe, packets.Unsubscribe:
	default:
		return pk, nil
	}
	held, ok := cl.State.Inflight.Get(pk.PacketID)
	if !ok || held.FixedHeader.Type != packets.Publish {
		return pk, nil
	}
	if cl.State.Inflight.Delete(pk.PacketID) {
		cl.State.Inflight.IncreaseSendQuota()
	}
	return pk, nil
}
