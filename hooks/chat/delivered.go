package chat

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/msgrhq/msgr/chat"
	"github.com/msgrhq/msgr/hooks/auth"
	"github.com/msgrhq/msgr/protocol"
)

// ackFlushInterval is how long PUBACK-derived acknowledgements are
// collected before they are stored: one store transaction per interval for
// all devices instead of one per message.
const ackFlushInterval = 200 * time.Millisecond

// OnPacketRead turns a device's PUBACK of a QoS 1 delivery of a message
// event or sync page into a cursor acknowledgement, so that plain MQTT
// clients that never send "ack" still produce delivery receipts and
// advance their sync position. mochi's PUBACK carries only the packet id;
// the delivered packet is still in the client's inflight store here,
// before mochi processes the PUBACK.
func (h *Hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Puback {
		return pk, nil
	}
	user, device, ok := auth.Identity(cl)
	if !ok {
		return pk, nil
	}
	out, ok := cl.State.Inflight.Get(pk.PacketID)
	if !ok || out.FixedHeader.Type != packets.Publish {
		return pk, nil
	}
	if !protocol.IsDeliveryTopic(out.TopicName, user, device) {
		return pk, nil
	}
	if acks := deliveredRanges(out.Payload); len(acks) > 0 {
		h.acks.add(chat.Device{User: user, Device: device}, acks)
	}
	return pk, nil
}

// deliveredRanges extracts the (from, seq] ranges a message event or a
// pushed sync page covers. A sync page's messages of one conversation are consecutive
// and start right after the cursor it was built from.
func deliveredRanges(payload []byte) []protocol.Cursor {
	if conv, seq, ok := protocol.PeekMessage(payload); ok {
		return []protocol.Cursor{{Conv: conv, From: seq - 1, Seq: seq}}
	}
	var ev struct {
		Type protocol.EventType `json:"type"`
		Req  string             `json:"req"`
		Msg  *struct {
			Conv string `json:"conv"`
			Seq  int64  `json:"seq"`
		} `json:"msg"`
		Msgs []struct {
			Conv string `json:"conv"`
			Seq  int64  `json:"seq"`
		} `json:"msgs"`
	}
	if json.Unmarshal(payload, &ev) != nil {
		return nil
	}
	switch {
	case ev.Type == protocol.EvMessage && ev.Msg != nil && ev.Msg.Seq > 0:
		return []protocol.Cursor{{Conv: ev.Msg.Conv, From: ev.Msg.Seq - 1, Seq: ev.Msg.Seq}}
	case ev.Type == protocol.EvSync && ev.Req == "":
		// Only pushed pages: a reply to a sync request is acknowledged by
		// the client's next request, after it has processed the page.
		var out []protocol.Cursor
		for _, m := range ev.Msgs {
			if n := len(out); n > 0 && out[n-1].Conv == m.Conv && out[n-1].Seq+1 == m.Seq {
				out[n-1].Seq = m.Seq
				continue
			}
			out = append(out, protocol.Cursor{Conv: m.Conv, From: m.Seq - 1, Seq: m.Seq})
		}
		return out
	}
	return nil
}

// ackBuffer collects acknowledgements per device and stores them
// periodically, merged into as few ranges as possible, all devices of one
// flush in one store transaction (in chunks of ackFlushChunk devices).
type ackBuffer struct {
	flush func(ctx context.Context, acks []chat.DeviceAcks) error

	mu      sync.Mutex
	pending map[chat.Device][]protocol.Cursor
}

// ackFlushChunk bounds how many devices one flush transaction covers.
const ackFlushChunk = 1000

func newAckBuffer(flush func(ctx context.Context, acks []chat.DeviceAcks) error) *ackBuffer {
	return &ackBuffer{flush: flush, pending: make(map[chat.Device][]protocol.Cursor)}
}

func (b *ackBuffer) add(dev chat.Device, acks []protocol.Cursor) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pending[dev] = append(b.pending[dev], acks...)
}

// run flushes every interval until ctx ends, then once more.
func (b *ackBuffer) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.flushAll(ctx)
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			b.flushAll(final)
			cancel()
			return
		}
	}
}

func (b *ackBuffer) flushAll(ctx context.Context) {
	b.mu.Lock()
	batch := b.pending
	b.pending = make(map[chat.Device][]protocol.Cursor, len(batch))
	b.mu.Unlock()
	all := make([]chat.DeviceAcks, 0, len(batch))
	for dev, acks := range batch {
		all = append(all, chat.DeviceAcks{Device: dev, Acks: mergeRanges(acks)})
	}
	for len(all) > 0 {
		n := min(len(all), ackFlushChunk)
		// A lost flush only means the devices get those messages again
		// through sync; the error has been logged by the chat core. The
		// timeout keeps one slow store call from holding up the next.
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = b.flush(fctx, all[:n])
		cancel()
		all = all[n:]
	}
}

// mergeRanges sorts ranges by conversation and start and joins overlapping
// or adjacent ones, so that (4,5] and (5,6] arriving in any order become
// (4,6].
func mergeRanges(acks []protocol.Cursor) []protocol.Cursor {
	slices.SortFunc(acks, func(a, b protocol.Cursor) int {
		return cmp.Or(strings.Compare(a.Conv, b.Conv), cmp.Compare(a.From, b.From))
	})
	out := acks[:0]
	for _, a := range acks {
		if n := len(out); n > 0 && out[n-1].Conv == a.Conv && a.From <= out[n-1].Seq {
			out[n-1].Seq = max(out[n-1].Seq, a.Seq)
			continue
		}
		out = append(out, a)
	}
	return out
}
