package chat

import (
	"encoding/json"
	"fmt"

	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage"
)

func encodeBody(b protocol.Body) ([]byte, error) {
	out, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encode body: %w", err)
	}
	return out, nil
}

func wireMessage(m storage.Message) *protocol.Message {
	w := wireMessageValue(m)
	return &w
}

func wireMessageValue(m storage.Message) protocol.Message {
	return protocol.Message{
		Conv: m.ConvID,
		Seq:  m.Seq,
		ID:   m.ID,
		From: m.SenderID,
		Dev:  m.SenderDevice,
		CMID: m.ClientMsgID,
		TS:   m.CreatedAt.UnixMilli(),
		Body: json.RawMessage(m.Body),
	}
}

func wireMessages(ms []storage.Message) []protocol.Message {
	out := make([]protocol.Message, len(ms))
	for i, m := range ms {
		out[i] = wireMessageValue(m)
	}
	return out
}

func wireConversation(c storage.Conversation, members []storage.Member) protocol.Conversation {
	w := protocol.Conversation{
		ID:        c.ID,
		Kind:      string(c.Kind),
		Title:     c.Title,
		CreatedBy: c.CreatedBy,
		Created:   c.CreatedAt.UnixMilli(),
		LastSeq:   c.LastSeq,
	}
	for _, m := range members {
		w.Members = append(w.Members, protocol.Member{User: m.UserID, Role: string(m.Role), FromSeq: m.FromSeq})
	}
	return w
}
