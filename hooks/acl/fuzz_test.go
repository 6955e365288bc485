package acl

import (
	"strings"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/msgrhq/msgr/protocol"
)

// ParseRules (the -topic-grants flag) never grants the chat namespace or a
// '$' topic, and every rule it returns is a valid filter.
func FuzzParseRules(f *testing.F) {
	for _, s := range []string{
		"sensors/#=rw,status/+=r", "a=w", "msgr/#=rw", "+/x=r", "#=rw", "$SYS/#=r", "a/b+=r", "a/#/b=r",
		"a=rw,,b=r", " a = r ", "a=x", "=r", "a", "a/+/+/#=rw",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		rules, err := ParseRules(spec)
		if err != nil {
			return
		}
		for _, r := range rules {
			if !mqtt.IsValidFilter(r.Filter, false) || protocol.InNamespace(r.Filter) || strings.HasPrefix(r.Filter, "$") {
				t.Fatalf("%q granted %q", spec, r.Filter)
			}
			if !r.Read && !r.Write {
				t.Fatalf("%q: rule %q grants nothing", spec, r.Filter)
			}
			if Covers(r.Filter, "msgr/u/alice/in") || Covers(r.Filter, protocol.CommandTopic("alice", protocol.OpSend)) {
				t.Fatalf("%q: rule %q covers a chat topic", spec, r.Filter)
			}
		}
	})
}

// Covers is reflexive on filters and never lets a narrower pattern cover
// a wildcard that reaches further.
func FuzzCovers(f *testing.F) {
	for _, s := range [][2]string{{"a/#", "a/b"}, {"a/+", "a/#"}, {"+/+", "a/b"}, {"a", "a/#"}, {"#", ""}, {"a/b", "a/b/c"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, p, filter string) {
		if !mqtt.IsValidFilter(p, false) || !mqtt.IsValidFilter(filter, false) || !wildcardsFillLevels(p) || !wildcardsFillLevels(filter) {
			return
		}
		if !Covers(p, p) {
			t.Fatalf("%q does not cover itself", p)
		}
		if Covers(p, filter) && strings.HasSuffix(filter, "#") && !strings.Contains(p, "#") {
			t.Fatalf("%q without '#' covers %q", p, filter)
		}
	})
}
