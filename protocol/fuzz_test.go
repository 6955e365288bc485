package protocol_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/msgrhq/msgr/protocol"
)

// Whatever ParseTopic accepts, the topic builders produce again: a parsed
// topic names exactly one inbox, device or command.
func FuzzParseTopic(f *testing.F) {
	for _, s := range []string{
		"msgr/u/alice/in", "msgr/u/alice/d/phone", "msgr/u/alice/cmd/send", "msgr/u/alice/cmd/group.create",
		"msgr/u/alice/cmd/", "msgr/u/alice/d/ph/one", "msgr/u/+/in", "msgr/#", "sensors/a", "msgr", "msgr/u//in",
		"", "/", "msgr/u/a/in/", "msgr/u/ALICE/in", "msgr/u/alice/cmd/a/b", "msgr/u/a\x00b/in",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		tp := protocol.ParseTopic(topic)
		switch tp.Kind {
		case protocol.TopicOther:
			if strings.HasPrefix(topic, protocol.Namespace+"/") || topic == protocol.Namespace {
				t.Fatalf("%q in the namespace parsed as other", topic)
			}
		case protocol.TopicInvalid:
			if !strings.HasPrefix(topic, protocol.Namespace) {
				t.Fatalf("%q outside the namespace parsed as invalid", topic)
			}
		case protocol.TopicInbox:
			if !protocol.ValidID(tp.User) || protocol.InboxTopic(tp.User) != topic {
				t.Fatalf("%q parsed as inbox of %q", topic, tp.User)
			}
		case protocol.TopicDevice:
			if !protocol.ValidID(tp.User) || !protocol.ValidID(tp.Device) || protocol.DeviceTopic(tp.User, tp.Device) != topic {
				t.Fatalf("%q parsed as device %q/%q", topic, tp.User, tp.Device)
			}
		case protocol.TopicCommand:
			if !protocol.ValidID(tp.User) || tp.Op == "" || strings.Contains(string(tp.Op), "/") || protocol.CommandTopic(tp.User, tp.Op) != topic {
				t.Fatalf("%q parsed as command %q of %q", topic, tp.Op, tp.User)
			}
		default:
			t.Fatalf("%q: kind %d", topic, tp.Kind)
		}
	})
}

// A client id parses only into valid ids that rebuild it.
func FuzzParseClientID(f *testing.F) {
	for _, s := range []string{"alice/phone", "alice", "alice/", "/phone", "a/b/c", "Alice/phone", "a.b_c-d/e", strings.Repeat("a", 70) + "/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		user, device, ok := protocol.ParseClientID(id)
		if !ok {
			return
		}
		if !protocol.ValidID(user) || !protocol.ValidID(device) || protocol.ClientID(user, device) != id {
			t.Fatalf("%q parsed as %q/%q", id, user, device)
		}
		if len(user) > protocol.MaxIDLen || len(device) > protocol.MaxIDLen {
			t.Fatalf("%q: ids longer than %d", id, protocol.MaxIDLen)
		}
	})
}

// Requests and events survive a JSON round trip: what decodes re-encodes
// to something that decodes to the same value. Clients decode events with
// these types; the broker decodes requests with them (hooks/chat fuzzes
// its stricter decoder).
func FuzzPayloadRoundTrip(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"id":"r1","to":"bob","cmid":"m1","body":{"type":"text","text":"hi"}}`,
		`{"v":1,"ack":[{"conv":"01J","from":2,"seq":5}],"limit":50}`,
		`{"v":1,"type":"message","msg":{"conv":"c","seq":3,"id":"i","from":"a","ts":1,"body":{"type":"text","text":"x"}}}`,
		`{"v":1,"type":"error","op":"send","req":"r","error":{"code":"rate_limited","message":"slow"}}`,
		`{"v":1,"type":"sync","msgs":[],"more":true,"unread":[{"conv":"c","last_seq":4,"read":1,"count":3}]}`,
		`{"v":1,"type":"receipt","receipt":{"conv":"c","user":"b","delivered":3,"read_hidden":true}}`,
		`{"v":1,"presence":"contacts","read_receipts":false}`,
		`{"v":1,"title":"t","members":["a","b"]}`, `[]`, `null`, `{"v":"1"}`, `{"body":{"type":7}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip[protocol.Request](t, data)
		roundTrip[protocol.Event](t, data)
	})
}

func roundTrip[T any](t *testing.T, data []byte) {
	t.Helper()
	var v T
	if json.Unmarshal(data, &v) != nil {
		return
	}
	enc, err := json.Marshal(v)
	if err != nil {
		// RawMessage bodies are passed through verbatim; anything else
		// that decoded must encode.
		if bytes.Contains(data, []byte("body")) {
			return
		}
		t.Fatalf("%T from %q does not encode: %v", v, data, err)
	}
	var again T
	if err := json.Unmarshal(enc, &again); err != nil {
		t.Fatalf("%T re-encoded as %q does not decode: %v", v, enc, err)
	}
	enc2, err := json.Marshal(again)
	if err != nil || !bytes.Equal(enc, enc2) {
		t.Fatalf("%T: %q then %q", v, enc, enc2)
	}
}

// PeekMessage agrees with a full decode of every message event the
// encoder produces, answers for all of them whose conversation id needs
// no escaping, and never answers with an invalid position.
func FuzzPeekMessage(f *testing.F) {
	f.Add("01JDQ3Z4N7ZK8Y1X2W3V4T5S6R", int64(3), "hi", []byte(`{"v":1,"type":"message","msg":{"conv":"c","seq":3}}`))
	f.Add(`c"d`, int64(1), "", []byte(`{"v":1,"type":"message","msg":{"conv":"c\"d","seq":3}}`))
	f.Add("c", int64(-4), "x", []byte(`{"v":1,"type":"message","msg":{"conv":"c","seq":03}}`))
	f.Add("", int64(0), "", []byte(`{"v":1,"type":"message","msg":{"conv":"","seq":4}}`))
	f.Add("<&>", int64(1<<62), "", []byte(`{"v":1,"type":"sync"}`))
	f.Fuzz(func(t *testing.T, conv string, seq int64, text string, raw []byte) {
		if c, s, ok := protocol.PeekMessage(raw); ok && (c == "" || s <= 0) {
			t.Fatalf("peeked conv %q seq %d from %q", c, s, raw)
		}
		body, _ := json.Marshal(protocol.Body{Type: protocol.BodyText, Text: text})
		payload, err := json.Marshal(protocol.Event{V: protocol.Version, Type: protocol.EvMessage,
			Msg: &protocol.Message{Conv: conv, Seq: seq, ID: "m", From: "a", TS: 1, Body: body}})
		if err != nil {
			t.Fatal(err)
		}
		c, s, ok := protocol.PeekMessage(payload)
		quoted, _ := json.Marshal(conv)
		plain := conv != "" && string(quoted) == `"`+conv+`"`
		switch {
		case ok && (c != conv || s != seq):
			t.Fatalf("peeked (%q, %d) from %s", c, s, payload)
		case !ok && plain && seq > 0:
			t.Fatalf("no answer for %s", payload)
		}
	})
}
