// Package acl is the mochi hook that decides who may publish and subscribe
// where. Chat topics are fixed by the protocol: a device reads its user's
// inbox and its own device topic, and publishes its user's commands. The
// operator may open generic topic trees (for IoT-style devices, anonymous
// or not), but never anything in the chat namespace.
package acl

import (
	"errors"
	"fmt"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/msgrhq/msgr/hooks/auth"
	"github.com/msgrhq/msgr/protocol"
)

// Rule grants every client access to the topics matching Filter.
type Rule struct {
	Filter string
	Read   bool
	Write  bool
}

// ParseRules parses a comma-separated list of FILTER=MODE grants, MODE being
// r, w or rw (e.g. "sensors/#=rw,status/+=r"). Filters must start with a
// literal level outside the chat namespace and must not start with '$'.
func ParseRules(spec string) ([]Rule, error) {
	var rules []Rule
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		filter, mode, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("topic grant %q: want FILTER=r|w|rw", item)
		}
		r := Rule{Filter: filter}
		switch mode {
		case "r":
			r.Read = true
		case "w":
			r.Write = true
		case "rw":
			r.Read, r.Write = true, true
		default:
			return nil, fmt.Errorf("topic grant %q: mode must be r, w or rw", item)
		}
		if err := checkGrantFilter(filter); err != nil {
			return nil, fmt.Errorf("topic grant %q: %w", item, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

func checkGrantFilter(f string) error {
	first, _, _ := strings.Cut(f, "/")
	switch {
	// mochi's IsValidFilter accepts "a/b+" and "a/b#", where a wildcard does
	// not fill its level (MQTT 4.7.1); such a grant would silently match a
	// literal level nobody can publish to, so refuse it.
	case !mqtt.IsValidFilter(f, false) || !wildcardsFillLevels(f):
		return fmt.Errorf("not a valid MQTT topic filter")
	case protocol.InNamespace(f):
		return fmt.Errorf("the first level must be a literal other than %q (the chat namespace is never granted)", protocol.Namespace)
	case strings.HasPrefix(first, "$"):
		return fmt.Errorf("topics starting with '$' cannot be granted")
	}
	return nil
}

// wildcardsFillLevels reports whether every '+' or '#' in f is a whole level.
func wildcardsFillLevels(f string) bool {
	for _, lvl := range strings.Split(f, "/") {
		if lvl != "+" && lvl != "#" && strings.ContainsAny(lvl, "+#") {
			return false
		}
	}
	return true
}

// Hook is the ACL hook.
type Hook struct {
	mqtt.HookBase
	rules       []Rule
	sendConnack auth.ConnackSender
}

// New returns an ACL hook granting rules on top of the chat topics.
// sendConnack (mqtt.Server.SendConnack) refuses connections whose will the
// client may not publish; nil closes them without a CONNACK.
func New(rules []Rule, sendConnack auth.ConnackSender) *Hook {
	return &Hook{rules: rules, sendConnack: sendConnack}
}

// ID implements mqtt.Hook.
func (h *Hook) ID() string { return "msgr-acl" }

// Provides implements mqtt.Hook.
func (h *Hook) Provides(b byte) bool { return b == mqtt.OnACLCheck || b == mqtt.OnConnect }

var errWillNotAllowed = errors.New("will topic is not one the client may publish to")

// OnConnect refuses a client whose will names a topic it may not publish
// to. mochi publishes wills without an ACL check (Server.sendLWT), so a
// will on msgr/u/bob/in would put a forged event in bob's inbox. Wills
// also bypass the chat hook, so one on the client's own command topic
// would never run: no will is allowed in the chat namespace.
func (h *Hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if !pk.Connect.WillFlag {
		return nil
	}
	topic := pk.Connect.WillTopic
	if mqtt.IsValidFilter(topic, true) && !protocol.InNamespace(topic) && h.OnACLCheck(cl, topic, true) {
		return nil
	}
	code := packets.ErrNotAuthorized
	if cl.Properties.ProtocolVersion < 5 {
		code = packets.Err3NotAuthorized // mochi does not map 0x87 for 3.1.1
	}
	if h.sendConnack != nil {
		if err := h.sendConnack(cl, code, false, nil); err != nil {
			return fmt.Errorf("refuse will: %w", err)
		}
	}
	return errWillNotAllowed
}

// OnACLCheck is called for publishes (write), subscription filters and every
// delivery (both !write), so it must be cheap and treat a concrete topic as
// a filter without wildcards.
func (h *Hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	if rest, ok := strings.CutPrefix(topic, "$share/"); ok {
		// Shared subscriptions are allowed on granted trees only.
		_, filter, found := strings.Cut(rest, "/")
		return found && !write && !protocol.InNamespace(filter) && h.granted(filter, false)
	}
	if protocol.InNamespace(topic) {
		return chatAllowed(cl, topic, write)
	}
	return h.granted(topic, write)
}

func chatAllowed(cl *mqtt.Client, topic string, write bool) bool {
	user, device, ok := auth.Identity(cl)
	if !ok {
		return false
	}
	t := protocol.ParseTopic(topic)
	if t.User != user {
		return false
	}
	if write {
		return t.Kind == protocol.TopicCommand
	}
	return t.Kind == protocol.TopicInbox || (t.Kind == protocol.TopicDevice && t.Device == device)
}

func (h *Hook) granted(filter string, write bool) bool {
	for _, r := range h.rules {
		if (write && !r.Write) || (!write && !r.Read) {
			continue
		}
		if Covers(r.Filter, filter) {
			return true
		}
	}
	return false
}

// Covers reports whether every topic matched by filter f is matched by
// pattern p. A topic name is a filter without wildcards.
func Covers(p, f string) bool {
	pl := strings.Split(p, "/")
	fl := strings.Split(f, "/")
	for i, lvl := range fl {
		if i >= len(pl) {
			return false
		}
		switch pl[i] {
		case "#":
			return true
		case "+":
			if lvl == "#" {
				return false
			}
		default:
			if lvl != pl[i] {
				return false
			}
		}
	}
	// "a/#" also matches "a" itself.
	return len(pl) == len(fl) || (len(pl) == len(fl)+1 && pl[len(fl)] == "#")
}
