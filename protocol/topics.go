// Package protocol defines msgr's wire format on top of MQTT: topic names
// and the versioned JSON payloads exchanged on them. docs/PROTOCOL.md is the
// prose version of this package; the broker and the SDKs both use it.
package protocol

import "strings"

// Namespace is the first topic level of every chat topic. Nothing under it
// is ever granted by operator configuration.
const Namespace = "msgr"

// Limits on identifiers. IDs appear as topic levels, so they may not contain
// '/', '+', '#' or '$'.
const (
	MaxIDLen = 64
)

// ValidID reports whether s is a valid user or device id: 1-64 characters of
// [a-z0-9._-], starting with a letter or digit.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// ClientID returns the MQTT client id of a user's device: "user/device".
func ClientID(user, device string) string { return user + "/" + device }

// ParseClientID splits "user/device"; ok is false unless both parts are valid ids.
func ParseClientID(clientID string) (user, device string, ok bool) {
	user, device, found := strings.Cut(clientID, "/")
	if !found || !ValidID(user) || !ValidID(device) {
		return "", "", false
	}
	return user, device, true
}

// InboxTopic is where the broker publishes a user's events (messages,
// membership changes); every device of the user subscribes to it.
func InboxTopic(user string) string { return Namespace + "/u/" + user + "/in" }

// DeviceTopic is where the broker publishes replies meant for one device
// (command results, errors, sync pages) unless the request named an MQTT 5
// response topic.
func DeviceTopic(user, device string) string {
	return Namespace + "/u/" + user + "/d/" + device
}

// IsDeliveryTopic reports whether topic is user's inbox or device's own
// topic: the same as comparing it with InboxTopic and DeviceTopic, without
// building them (the broker asks for every PUBACK it reads).
func IsDeliveryTopic(topic, user, device string) bool {
	rest, ok := strings.CutPrefix(topic, Namespace+"/u/")
	if !ok {
		return false
	}
	if rest, ok = strings.CutPrefix(rest, user); !ok {
		return false
	}
	if rest == "/in" {
		return true
	}
	rest, ok = strings.CutPrefix(rest, "/d/")
	return ok && rest == device
}

// CommandTopic is where a user's device publishes command op.
func CommandTopic(user string, op Op) string {
	return Namespace + "/u/" + user + "/cmd/" + string(op)
}

// TopicKind classifies a topic inside the chat namespace.
type TopicKind int

// Topic kinds returned by ParseTopic.
const (
	TopicOther   TopicKind = iota // not a chat topic (outside the namespace)
	TopicInvalid                  // inside the namespace but not a known shape
	TopicInbox
	TopicDevice
	TopicCommand
)

// Topic is a parsed chat topic.
type Topic struct {
	Kind   TopicKind
	User   string
	Device string // TopicDevice only
	Op     Op     // TopicCommand only (may be unknown; see Op.Known)
}

// InNamespace reports whether a topic name or filter could touch the chat
// namespace: it starts with "msgr", or its first level is a wildcard.
func InNamespace(topicOrFilter string) bool {
	first, _, _ := strings.Cut(topicOrFilter, "/")
	return first == Namespace || first == "+" || first == "#"
}

// ParseTopic parses a concrete topic name (no wildcards). The ACL hook
// calls it for every delivery, so it does not allocate.
func ParseTopic(topic string) Topic {
	ns, rest, _ := strings.Cut(topic, "/")
	if ns != Namespace {
		return Topic{Kind: TopicOther}
	}
	bad := Topic{Kind: TopicInvalid}
	u, rest, ok := strings.Cut(rest, "/")
	if !ok || u != "u" {
		return bad
	}
	user, rest, ok := strings.Cut(rest, "/")
	if !ok || !ValidID(user) {
		return bad
	}
	kind, last, more := strings.Cut(rest, "/")
	switch {
	case kind == "in" && !more:
		return Topic{Kind: TopicInbox, User: user}
	case !more || strings.Contains(last, "/"):
		return bad
	case kind == "d" && ValidID(last):
		return Topic{Kind: TopicDevice, User: user, Device: last}
	case kind == "cmd" && last != "":
		return Topic{Kind: TopicCommand, User: user, Op: Op(last)}
	}
	return bad
}

// Op names a command a device sends on CommandTopic.
type Op string

// Commands. docs/PROTOCOL.md describes each request and response.
const (
	OpSend          Op = "send"
	OpSync          Op = "sync"
	OpAck           Op = "ack"
	OpHistory       Op = "history"
	OpDirect        Op = "direct"
	OpGroupCreate   Op = "group.create"
	OpGroupAdd      Op = "group.add"
	OpGroupRemove   Op = "group.remove"
	OpGroupLeave    Op = "group.leave"
	OpGroupRole     Op = "group.role"
	OpConversations Op = "conversations"
	OpConversation  Op = "conversation"
	OpRead          Op = "read"
	OpReceipts      Op = "receipts"
	OpTyping        Op = "typing"
	OpPresence      Op = "presence"
	OpSettings      Op = "settings"
)

var knownOps = map[Op]bool{
	OpSend: true, OpSync: true, OpAck: true, OpHistory: true, OpDirect: true,
	OpGroupCreate: true, OpGroupAdd: true, OpGroupRemove: true, OpGroupLeave: true,
	OpGroupRole: true, OpConversations: true, OpConversation: true,
	OpRead: true, OpReceipts: true, OpTyping: true, OpPresence: true, OpSettings: true,
}

// Known reports whether op is a command the broker understands.
func (op Op) Known() bool { return knownOps[op] }

// String implements fmt.Stringer.
func (op Op) String() string { return string(op) }
