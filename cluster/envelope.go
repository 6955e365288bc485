package cluster

import (
	"encoding/binary"
	"errors"
)

// Envelope kinds on the node and broadcast channels.
const (
	kindEvent     byte = 'e' // an inbox event for a user's devices on the receiving node
	kindNudge     byte = 'n' // the user's devices there should sync: a forward may be lost
	kindNudgeAll  byte = 'a' // every device of the receiving node(s) should sync
	kindInvalid   byte = 'm' // drop the cached member list of a conversation
	kindKick      byte = 'k' // disconnect the clients a selector names (payload: reason code)
	envelopeBytes      = 4   // kind, qos, name length (2 bytes)
)

var errEnvelope = errors.New("cluster: malformed envelope")

// envelope is what nodes send each other: kind, QoS, a name (user or
// conversation id) and, for events, the inbox payload as published.
type envelope struct {
	kind    byte
	qos     byte
	name    string
	payload []byte
}

func (e envelope) encode() []byte {
	b := make([]byte, envelopeBytes, envelopeBytes+len(e.name)+len(e.payload))
	b[0], b[1] = e.kind, e.qos
	binary.BigEndian.PutUint16(b[2:], uint16(len(e.name)))
	b = append(b, e.name...)
	return append(b, e.payload...)
}

func decodeEnvelope(b []byte) (envelope, error) {
	if len(b) < envelopeBytes {
		return envelope{}, errEnvelope
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	if len(b) < envelopeBytes+n || b[1] > 1 {
		return envelope{}, errEnvelope
	}
	e := envelope{kind: b[0], qos: b[1], name: string(b[envelopeBytes : envelopeBytes+n]), payload: b[envelopeBytes+n:]}
	switch e.kind {
	case kindEvent, kindNudge, kindNudgeAll, kindInvalid, kindKick:
		return e, nil
	}
	return envelope{}, errEnvelope
}
