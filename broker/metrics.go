package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/msgrhq/msgr/chat"
	"github.com/msgrhq/msgr/metrics"
	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage"
)

// meteredStore times the chat core's group commits. Only AppendMessages is
// wrapped; everything else goes straight to the store.
type meteredStore struct {
	chat.Store
	m *metrics.Metrics
}

func (s meteredStore) AppendMessages(ctx context.Context, batch []storage.NewMessage) ([]storage.AppendResult, error) {
	start := time.Now()
	res, err := s.Store.AppendMessages(ctx, batch)
	stored := 0
	for _, r := range res {
		if r.Err == nil && !r.Duplicate {
			stored++
		}
	}
	s.m.Committed(len(batch), stored, time.Since(start), err)
	return res, err
}

// meteredPublisher counts what the chat core and the chat hook publish,
// by the event type at the start of each payload (protocol.Event encodes
// v and type first), without decoding the payload.
type meteredPublisher struct {
	*publisher
	m *metrics.Metrics
}

func (p meteredPublisher) Publish(topic string, payload []byte) error {
	p.count(payload)
	return p.failed(p.publisher.Publish(topic, payload))
}

func (p meteredPublisher) Notify(topic string, payload []byte) error {
	p.count(payload)
	return p.failed(p.publisher.Notify(topic, payload))
}

func (p meteredPublisher) Reply(topic string, payload, correlation []byte) error {
	if string(eventType(payload)) == string(protocol.EvError) {
		var ev struct {
			Error *protocol.Error `json:"error"`
		}
		kind := "chat_unknown"
		if json.Unmarshal(payload, &ev) == nil && ev.Error != nil && knownCode(ev.Error.Code) {
			kind = "chat_" + string(ev.Error.Code)
		}
		p.m.Error(kind)
	}
	return p.failed(p.publisher.Reply(topic, payload, correlation))
}

func (p meteredPublisher) count(payload []byte) {
	// string(bytes) in a switch does not allocate.
	switch string(eventType(payload)) {
	case string(protocol.EvMessage):
		p.m.MessagePublished()
	case string(protocol.EvReceipt):
		p.m.EventPublished(string(protocol.EvReceipt))
	case string(protocol.EvPresence):
		p.m.EventPublished(string(protocol.EvPresence))
	case string(protocol.EvTyping):
		p.m.EventPublished(string(protocol.EvTyping))
	}
}

func (p meteredPublisher) failed(err error) error {
	if err != nil {
		p.m.Error("publish")
	}
	return err
}

var eventPrefix = []byte(`{"v":1,"type":"`)

// eventType returns the type of an encoded protocol.Event, or nil.
func eventType(payload []byte) []byte {
	rest, ok := bytes.CutPrefix(payload, eventPrefix)
	if !ok {
		return nil
	}
	end := bytes.IndexByte(rest, '"')
	if end < 0 || end > 32 {
		return nil
	}
	return rest[:end]
}

// knownCode keeps the errors metric's label set bounded.
func knownCode(c protocol.Code) bool {
	switch c {
	case protocol.CodeBadRequest, protocol.CodeBadVersion, protocol.CodeUnknownOp, protocol.CodeTooLarge,
		protocol.CodeNotFound, protocol.CodeNotMember, protocol.CodeForbidden, protocol.CodeExists,
		protocol.CodeGroupFull, protocol.CodeRateLimited, protocol.CodeUnavailable, protocol.CodeInternal:
		return true
	}
	return false
}
