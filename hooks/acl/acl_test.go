package acl_test

import (
	"reflect"
	"strings"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/msgrhq/msgr/hooks/acl"
)

func TestCovers(t *testing.T) {
	tests := []struct {
		pattern, filter string
		want            bool
	}{
		// Topic names (filters without wildcards).
		{"sensors/a", "sensors/a", true},
		{"sensors/a", "sensors/b", false},
		{"sensors/a", "sensors", false},
		{"sensors/a", "sensors/a/b", false},
		{"sensors/+", "sensors/a", true},
		{"sensors/+", "sensors/", true}, // '+' matches an empty level
		{"sensors/+", "sensors", false},
		{"sensors/+", "sensors/a/b", false},
		{"sensors/#", "sensors", true}, // "a/#" matches "a" itself
		{"sensors/#", "sensors/a", true},
		{"sensors/#", "sensors/a/b/c", true},
		{"sensors/#", "sensorsx/a", false},
		{"sensors/#", "other/a", false},
		{"sensors/+/temp", "sensors/k/temp", true},
		{"sensors/+/temp", "sensors/k/hum", false},
		{"sensors/+/temp", "sensors/k", false},
		{"a/+/#", "a/x", true},
		{"a/+/#", "a/x/y/z", true},
		{"a/+/#", "a", false},
		{"#", "anything/at/all", true},

		// Filters: every topic the filter matches must match the pattern.
		{"sensors/#", "sensors/#", true},
		{"sensors/#", "sensors/+", true},
		{"sensors/#", "sensors/+/x/#", true},
		{"sensors/+", "sensors/+", true},
		{"sensors/+", "sensors/#", false},
		{"sensors/+", "+", false},
		{"sensors/+", "#", false},
		{"sensors/a", "sensors/+", false},
		{"sensors/a", "sensors/#", false},
		{"sensors/+/temp", "sensors/+/#", false},
		{"sensors/+/temp", "sensors/+/+", false},
		{"a/+/#", "a/#", false}, // a/# matches "a", a/+/# does not
		{"a/b", "a/b/#", false},
		{"status/+", "status/#", false},
		{"status/+", "status/+/x", false},
		{"sensors/#", "+/a", false},
		{"sensors/#", "#", false},
	}
	for _, tt := range tests {
		if got := acl.Covers(tt.pattern, tt.filter); got != tt.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", tt.pattern, tt.filter, got, tt.want)
		}
	}
}

func TestParseRules(t *testing.T) {
	tests := []struct {
		spec    string
		want    []acl.Rule
		wantErr string // substring of the error; "" means no error
	}{
		{spec: "", want: nil},
		{spec: " , ,", want: nil},
		{spec: "sensors/#=rw", want: []acl.Rule{{Filter: "sensors/#", Read: true, Write: true}}},
		{spec: "sensors/#=rw,status/+=r", want: []acl.Rule{
			{Filter: "sensors/#", Read: true, Write: true},
			{Filter: "status/+", Read: true},
		}},
		{spec: " cmd/+/set=w , logs=r ", want: []acl.Rule{
			{Filter: "cmd/+/set", Write: true},
			{Filter: "logs", Read: true},
		}},
		{spec: "msgrx/#=r", want: []acl.Rule{{Filter: "msgrx/#", Read: true}}},

		{spec: "sensors/#", wantErr: "want FILTER=r|w|rw"},
		{spec: "sensors/#=", wantErr: "mode must be r, w or rw"},
		{spec: "sensors/#=x", wantErr: "mode must be r, w or rw"},
		{spec: "sensors/#=RW", wantErr: "mode must be r, w or rw"},
		{spec: "sensors/#=rw=r", wantErr: "mode must be r, w or rw"},
		{spec: "=rw", wantErr: "not a valid MQTT topic filter"},
		{spec: "sensors/#/x=r", wantErr: "not a valid MQTT topic filter"},
		{spec: "sensors/te+mp=r", wantErr: "not a valid MQTT topic filter"},
		{spec: "sensors/x#=r", wantErr: "not a valid MQTT topic filter"},
		{spec: "#=rw", wantErr: "chat namespace is never granted"},
		{spec: "+=r", wantErr: "chat namespace is never granted"},
		{spec: "+/x=r", wantErr: "chat namespace is never granted"},
		{spec: "msgr=r", wantErr: "chat namespace is never granted"},
		{spec: "msgr/#=r", wantErr: "chat namespace is never granted"},
		{spec: "msgr/u/+/in=r", wantErr: "chat namespace is never granted"},
		{spec: "$SYS/#=r", wantErr: "starting with '$'"},
		{spec: "$share/g/sensors/#=r", wantErr: "starting with '$'"},
		// One bad item spoils the list, and the error names it.
		{spec: "sensors/#=rw,msgr/#=r", wantErr: `"msgr/#=r"`},
	}
	for _, tt := range tests {
		got, err := acl.ParseRules(tt.spec)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ParseRules(%q): %v", tt.spec, err)
		case tt.wantErr != "" && err == nil:
			t.Errorf("ParseRules(%q) = %+v, want an error containing %q", tt.spec, got, tt.wantErr)
		case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
			t.Errorf("ParseRules(%q) error %q does not contain %q", tt.spec, err, tt.wantErr)
		case tt.wantErr == "" && !reflect.DeepEqual(got, tt.want):
			t.Errorf("ParseRules(%q) = %+v, want %+v", tt.spec, got, tt.want)
		}
	}
}

// client builds a connected (non-inline) mochi client as the hooks see it.
func client(id, username string) *mqtt.Client {
	cl := &mqtt.Client{ID: id}
	cl.Properties.Username = []byte(username)
	return cl
}

func TestOnACLCheck(t *testing.T) {
	rules, err := acl.ParseRules("sensors/#=rw,status/+=r,cmd/+=w")
	if err != nil {
		t.Fatal(err)
	}
	h := acl.New(rules, nil)
	alice := client("alice/phone", "alice")
	anon := client("thermo-1", "")
	// Usernames that do not match the client id never get chat topics
	// (the auth hook refuses such connections; this is defence in depth).
	mismatch := client("bob/phone", "alice")

	tests := []struct {
		name  string
		cl    *mqtt.Client
		topic string
		write bool
		want  bool
	}{
		{"own inbox read", alice, "msgr/u/alice/in", false, true},
		{"own device read", alice, "msgr/u/alice/d/phone", false, true},
		{"own command write", alice, "msgr/u/alice/cmd/send", true, true},
		{"own unknown command write", alice, "msgr/u/alice/cmd/launch", true, true},

		{"own inbox write", alice, "msgr/u/alice/in", true, false},
		{"own device write", alice, "msgr/u/alice/d/phone", true, false},
		{"own command read", alice, "msgr/u/alice/cmd/send", false, false},
		{"own commands wildcard read", alice, "msgr/u/alice/cmd/+", false, false},
		{"other own device read", alice, "msgr/u/alice/d/laptop", false, false},
		{"own devices wildcard", alice, "msgr/u/alice/d/+", false, false},
		{"own tree", alice, "msgr/u/alice/#", false, false},
		{"other inbox read", alice, "msgr/u/bob/in", false, false},
		{"other inbox write", alice, "msgr/u/bob/in", true, false},
		{"other device read", alice, "msgr/u/bob/d/phone", false, false},
		{"other command write", alice, "msgr/u/bob/cmd/send", true, false},
		{"all inboxes", alice, "msgr/u/+/in", false, false},
		{"namespace", alice, "msgr/#", false, false},
		{"namespace root write", alice, "msgr/x", true, false},
		{"everything", alice, "#", false, false},
		{"four levels", alice, "+/+/+/+", false, false},
		{"sys", alice, "$SYS/#", false, false},
		{"shared chat", alice, "$share/g/msgr/u/bob/in", false, false},
		{"shared own inbox", alice, "$share/g/msgr/u/alice/in", false, false},
		{"shared upper case chat", alice, "$SHARE/g/msgr/u/bob/in", false, false},

		{"granted rw read", alice, "sensors/#", false, true},
		{"granted rw write", alice, "sensors/kitchen/temp", true, true},
		{"granted r read", alice, "status/+", false, true},
		{"granted r write", alice, "status/x", true, false},
		{"granted w read", alice, "cmd/+", false, false},
		{"granted w write", alice, "cmd/x", true, true},
		{"shared granted", alice, "$share/g/sensors/#", false, true},
		{"shared granted write", alice, "$share/g/sensors/a", true, false},
		{"shared without filter", alice, "$share/g", false, false},
		{"ungranted", alice, "other/x", false, false},
		{"wider than grant", alice, "status/#", false, false},

		{"anonymous granted", anon, "sensors/a", true, true},
		{"anonymous granted read", anon, "sensors/#", false, true},
		{"anonymous read-only", anon, "status/x", true, false},
		{"anonymous chat inbox", anon, "msgr/u/alice/in", false, false},
		{"anonymous chat command", anon, "msgr/u/alice/cmd/send", true, false},
		{"anonymous namespace", anon, "msgr/#", false, false},

		{"mismatched username", mismatch, "msgr/u/bob/in", false, false},
		{"mismatched username own", mismatch, "msgr/u/alice/in", false, false},
	}
	for _, tt := range tests {
		if got := h.OnACLCheck(tt.cl, tt.topic, tt.write); got != tt.want {
			t.Errorf("%s: OnACLCheck(%s, %q, write=%v) = %v, want %v", tt.name, tt.cl.ID, tt.topic, tt.write, got, tt.want)
		}
	}

	// The broker's own inline client publishes anywhere.
	inline := client("local", "")
	inline.Net.Inline = true
	if !h.OnACLCheck(inline, "msgr/u/alice/in", true) {
		t.Error("inline client refused")
	}
}

func TestOnConnectWill(t *testing.T) {
	rules, err := acl.ParseRules("sensors/#=rw,status/+=r")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		id, user string
		will     string // "" means no will
		ok       bool
	}{
		{"no will", "alice/phone", "alice", "", true},
		{"granted", "alice/phone", "alice", "sensors/alice/online", true},
		{"granted anonymous", "thermo-1", "", "sensors/thermo-1/online", true},
		{"read-only grant", "thermo-1", "", "status/thermo-1", false},
		{"ungranted", "alice/phone", "alice", "other/x", false},
		{"wildcard", "thermo-1", "", "sensors/#", false},
		{"sys", "thermo-1", "", "$SYS/x", false},
		{"other inbox", "alice/phone", "alice", "msgr/u/bob/in", false},
		{"own inbox", "alice/phone", "alice", "msgr/u/alice/in", false},
		{"own device", "alice/phone", "alice", "msgr/u/alice/d/phone", false},
		{"own command", "alice/phone", "alice", "msgr/u/alice/cmd/send", false},
		{"anonymous chat", "thermo-1", "", "msgr/u/alice/in", false},
	}
	for _, tt := range tests {
		for _, version := range []byte{4, 5} {
			var sent []packets.Code
			h := acl.New(rules, func(_ *mqtt.Client, reason packets.Code, _ bool, _ *packets.Properties) error {
				sent = append(sent, reason)
				return nil
			})
			cl := client(tt.id, tt.user)
			cl.Properties.ProtocolVersion = version
			var pk packets.Packet
			if tt.will != "" {
				pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload = true, tt.will, []byte("x")
			}
			err := h.OnConnect(cl, pk)
			if tt.ok {
				if err != nil || len(sent) != 0 {
					t.Errorf("%s (v%d): error %v, CONNACKs %v", tt.name, version, err, sent)
				}
				continue
			}
			want := byte(0x87)
			if version < 5 {
				want = 0x05
			}
			if err == nil || len(sent) != 1 || sent[0].Code != want {
				t.Errorf("%s (v%d): error %v, CONNACKs %v, want a refusal with 0x%02x", tt.name, version, err, sent, want)
			}
		}
	}
}
