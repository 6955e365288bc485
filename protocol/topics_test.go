package protocol_test

import (
	"strings"
	"testing"

	"github.com/msgrhq/msgr/protocol"
)

func TestValidID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"alice", true},
		{"a", true},
		{"7", true},
		{"bob.smith_2-x", true},
		{"0phone", true},
		{strings.Repeat("a", protocol.MaxIDLen), true},

		{"", false},
		{strings.Repeat("a", protocol.MaxIDLen+1), false},
		{"Alice", false},
		{".alice", false},
		{"_alice", false},
		{"-alice", false},
		{"al ice", false},
		{"alice/phone", false},
		{"+", false},
		{"#", false},
		{"$sys", false},
		{"al+ce", false},
		{"al#ce", false},
		{"élise", false},
		{"alice\x00", false},
		{"alice\n", false},
	}
	for _, tt := range tests {
		if got := protocol.ValidID(tt.id); got != tt.want {
			t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestParseClientID(t *testing.T) {
	tests := []struct {
		clientID     string
		user, device string
		ok           bool
	}{
		{"alice/phone", "alice", "phone", true},
		{"a/b", "a", "b", true},
		{"bob.s/laptop-2", "bob.s", "laptop-2", true},

		{"", "", "", false},
		{"alice", "", "", false},
		{"alice/", "", "", false},
		{"/phone", "", "", false},
		{"alice/phone/x", "", "", false},
		{"alice//phone", "", "", false},
		{"Alice/phone", "", "", false},
		{"alice/Phone", "", "", false},
		{"alice/+", "", "", false},
		{"+/phone", "", "", false},
		{"alice/#", "", "", false},
		{"alice/" + strings.Repeat("p", protocol.MaxIDLen+1), "", "", false},
	}
	for _, tt := range tests {
		user, device, ok := protocol.ParseClientID(tt.clientID)
		if user != tt.user || device != tt.device || ok != tt.ok {
			t.Errorf("ParseClientID(%q) = %q, %q, %v; want %q, %q, %v",
				tt.clientID, user, device, ok, tt.user, tt.device, tt.ok)
		}
	}
	// ClientID and ParseClientID are inverses on valid ids.
	if u, d, ok := protocol.ParseClientID(protocol.ClientID("carol", "tab")); !ok || u != "carol" || d != "tab" {
		t.Errorf("round trip: %q, %q, %v", u, d, ok)
	}
}

func TestIsDeliveryTopic(t *testing.T) {
	tests := []struct {
		topic string
		want  bool
	}{
		{protocol.InboxTopic("alice"), true},
		{protocol.DeviceTopic("alice", "phone"), true},
		{protocol.DeviceTopic("alice", "tab"), false},
		{protocol.DeviceTopic("alice", "phone") + "/x", false},
		{protocol.InboxTopic("alicex"), false},
		{protocol.InboxTopic("bob"), false},
		{protocol.InboxTopic("alice") + "/", false},
		{"msgr/u/alice", false},
		{"msgr/u/alice/d/", false},
		{"msgr/u/alice/cmd/send", false},
		{"sensors/alice/in", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := protocol.IsDeliveryTopic(tt.topic, "alice", "phone"); got != tt.want {
			t.Errorf("IsDeliveryTopic(%q, alice, phone) = %v, want %v", tt.topic, got, tt.want)
		}
	}
}

func TestParseTopic(t *testing.T) {
	tests := []struct {
		topic string
		want  protocol.Topic
	}{
		{"msgr/u/alice/in", protocol.Topic{Kind: protocol.TopicInbox, User: "alice"}},
		{"msgr/u/alice/d/phone", protocol.Topic{Kind: protocol.TopicDevice, User: "alice", Device: "phone"}},
		{"msgr/u/alice/cmd/send", protocol.Topic{Kind: protocol.TopicCommand, User: "alice", Op: protocol.OpSend}},
		{"msgr/u/alice/cmd/group.create", protocol.Topic{Kind: protocol.TopicCommand, User: "alice", Op: protocol.OpGroupCreate}},
		// Unknown ops are still command topics; the chat hook answers unknown_op.
		{"msgr/u/alice/cmd/launch", protocol.Topic{Kind: protocol.TopicCommand, User: "alice", Op: "launch"}},
		{protocol.InboxTopic("bob"), protocol.Topic{Kind: protocol.TopicInbox, User: "bob"}},
		{protocol.DeviceTopic("bob", "tab"), protocol.Topic{Kind: protocol.TopicDevice, User: "bob", Device: "tab"}},
		{protocol.CommandTopic("bob", protocol.OpSync), protocol.Topic{Kind: protocol.TopicCommand, User: "bob", Op: protocol.OpSync}},

		// Outside the namespace.
		{"sensors/a", protocol.Topic{Kind: protocol.TopicOther}},
		{"msgrx/u/alice/in", protocol.Topic{Kind: protocol.TopicOther}},
		{"MSGR/u/alice/in", protocol.Topic{Kind: protocol.TopicOther}},
		{"/msgr/u/alice/in", protocol.Topic{Kind: protocol.TopicOther}},
		{"$SYS/broker/uptime", protocol.Topic{Kind: protocol.TopicOther}},
		{"", protocol.Topic{Kind: protocol.TopicOther}},

		// Inside the namespace but not a known shape.
		{"msgr", protocol.Topic{Kind: protocol.TopicInvalid}},
		{"msgr/", protocol.Topic{Kind: protocol.TopicInvalid}},
		{"msgr/x", protocol.Topic{Kind: protocol.TopicInvalid}},
		{"msgr/u/alice", protocol.Topic{Kind: protocol.TopicInvalid}},
		{"msgr/u/alice/out", protocol.Topic{Kind: protocol.TopicInvalid}},
		{"msgr/u/alice/in/x", protocol.Topic{Kind: protocol.TopicInvalid}},
		{"msgr/v/alice/in", protocol.Topic{Kind: protocol.TopicInvalid}},
		{"msgr/u/Alice/in", protocol.Topic{Kind: protocol.TopicInvalid}},
		{"msgr/u//in", protocol.Topic{Kind: protocol.TopicInvalid}},
		{"msgr/u/+/in", protocol.Topic{Kind: protocol.TopicInvalid}},
		{"msgr/u/#", protocol.Topic{Kind: protocol.TopicInvalid}},
		{"msgr/u/alice/#", protocol.Topic{Kind: protocol.TopicInvalid}},
		{"msgr/u/alice/d", protocol.Topic{Kind: protocol.TopicInvalid}},
		{"msgr/u/alice/d/", protocol.Topic{Kind: protocol.TopicInvalid}},
		{"msgr/u/alice/d/+", protocol.Topic{Kind: protocol.TopicInvalid}},
		{"msgr/u/alice/d/#", protocol.Topic{Kind: protocol.TopicInvalid}},
		{"msgr/u/alice/d/phone/x", protocol.Topic{Kind: protocol.TopicInvalid}},
		{"msgr/u/alice/cmd", protocol.Topic{Kind: protocol.TopicInvalid}},
		{"msgr/u/alice/cmd/", protocol.Topic{Kind: protocol.TopicInvalid}},
		{"msgr/u/alice/cmd/send/x", protocol.Topic{Kind: protocol.TopicInvalid}},
	}
	for _, tt := range tests {
		if got := protocol.ParseTopic(tt.topic); got != tt.want {
			t.Errorf("ParseTopic(%q) = %+v, want %+v", tt.topic, got, tt.want)
		}
	}
}

func TestInNamespace(t *testing.T) {
	tests := []struct {
		topic string
		want  bool
	}{
		{"msgr", true},
		{"msgr/u/alice/in", true},
		{"msgr/#", true},
		{"#", true},
		{"+", true},
		{"+/u/alice/in", true},
		{"+/+/+/+", true},

		{"", false},
		{"sensors/#", false},
		{"msgrx/u", false},
		{"MSGR/u", false},
		{"/msgr/u", false},
		{"$SYS/#", false},
		{"$share/g/msgr/u/bob/in", false}, // the ACL hook unwraps shared filters itself
		{"a/msgr", false},
	}
	for _, tt := range tests {
		if got := protocol.InNamespace(tt.topic); got != tt.want {
			t.Errorf("InNamespace(%q) = %v, want %v", tt.topic, got, tt.want)
		}
	}
}

func TestOpKnown(t *testing.T) {
	for _, op := range []protocol.Op{
		protocol.OpSend, protocol.OpSync, protocol.OpAck, protocol.OpHistory, protocol.OpDirect,
		protocol.OpGroupCreate, protocol.OpGroupAdd, protocol.OpGroupRemove, protocol.OpGroupLeave,
		protocol.OpGroupRole, protocol.OpConversations, protocol.OpConversation,
	} {
		if !op.Known() {
			t.Errorf("%q is not Known", op)
		}
	}
	for _, op := range []protocol.Op{"", "launch", "Send", "group", "group.", "+", "#"} {
		if op.Known() {
			t.Errorf("%q is Known", op)
		}
	}
}

func BenchmarkParseTopic(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		protocol.ParseTopic("msgr/u/alice/d/phone")
	}
}
