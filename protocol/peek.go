package protocol

import (
	"bytes"
	"strconv"
)

// messageEventHead is how every encoded message event begins: Event and
// Message encode their fields in declaration order, and v, type, msg and
// msg.conv come first (TestPeekMessageMatchesEncoding keeps it so).
var messageEventHead = []byte(`{"v":` + strconv.Itoa(Version) + `,"type":"` + string(EvMessage) + `","msg":{"conv":"`)

var seqKey = []byte(`","seq":`)

// PeekMessage reads msg.conv and msg.seq from an encoded message event
// without decoding it: the broker does this for every PUBACK of a
// delivery, where a full decode cost several microseconds. It reports
// false for anything that does not start exactly as this package encodes
// a message event (including a conversation id with escapes), so callers
// fall back to decoding; it does not validate the rest of the payload.
func PeekMessage(payload []byte) (conv string, seq int64, ok bool) {
	rest, ok := bytes.CutPrefix(payload, messageEventHead)
	if !ok {
		return "", 0, false
	}
	end := bytes.IndexByte(rest, '"')
	if end <= 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return "", 0, false
	}
	id := rest[:end]
	rest, ok = bytes.CutPrefix(rest[end:], seqKey)
	if !ok {
		return "", 0, false
	}
	n := 0
	for n < len(rest) && n < 19 && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if n == 0 || n == len(rest) || (rest[n] != ',' && rest[n] != '}') {
		return "", 0, false
	}
	seq, err := strconv.ParseInt(string(rest[:n]), 10, 64)
	if err != nil || seq <= 0 {
		return "", 0, false
	}
	return string(id), seq, true
}
