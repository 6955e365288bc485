package broker_test

import (
	"bytes"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/broker/brokertest"
	"github.com/msgrhq/msgr/protocol"
)

// MQTT reason codes these tests expect.
const (
	v3Granted       = 0x01 // SUBACK: QoS 1
	v3SubFailure    = 0x80 // SUBACK
	v3IDRejected    = 0x02 // CONNACK
	v3BadCredential = 0x04 // CONNACK
	v3NotAuthorized = 0x05 // CONNACK
	v5NotAuthorized = 0x87 // SUBACK, PUBACK, CONNACK
	v5BadClientID   = 0x85 // CONNACK
	v5BadCredential = 0x86 // CONNACK
)

// rawV3 is a bare MQTT 3.1.1 connection (paho.mqtt.golang) for hostile,
// anonymous and generic clients: it records every publish it receives and
// can drop its socket without a DISCONNECT.
type rawV3 struct {
	t    testing.TB
	id   string
	c    mqtt3.Client
	msgs chan mqtt3.Message
	lost chan struct{} // closed when the connection is lost

	mu   sync.Mutex
	conn net.Conn
}

type rawV3Options struct {
	username, password string
	persistent         bool
	will               *rawWill
}

type rawWill struct {
	topic   string
	payload string
	retain  bool
}

// connectRawV3 connects clientID to addr and returns the CONNACK return
// code; the client is nil unless the connection was accepted.
func connectRawV3(t testing.TB, addr, clientID string, o rawV3Options) (*rawV3, byte, error) {
	t.Helper()
	cl := &rawV3{t: t, id: clientID, msgs: make(chan mqtt3.Message, 10000), lost: make(chan struct{})}
	var once sync.Once
	opts := mqtt3.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(clientID).
		SetUsername(o.username).
		SetPassword(o.password).
		SetProtocolVersion(4).
		SetCleanSession(!o.persistent).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(true).
		SetConnectTimeout(waitFor).
		SetKeepAlive(time.Minute).
		SetDefaultPublishHandler(func(_ mqtt3.Client, m mqtt3.Message) { cl.msgs <- m }).
		SetConnectionLostHandler(func(mqtt3.Client, error) { once.Do(func() { close(cl.lost) }) }).
		SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt3.ClientOptions) (net.Conn, error) {
			conn, err := net.DialTimeout("tcp", u.Host, waitFor)
			cl.mu.Lock()
			cl.conn = conn
			cl.mu.Unlock()
			return conn, err
		})
	if o.will != nil {
		opts.SetWill(o.will.topic, o.will.payload, 1, o.will.retain)
	}
	cl.c = mqtt3.NewClient(opts)
	tok := cl.c.Connect()
	if !tok.WaitTimeout(waitFor) {
		t.Fatalf("connect %s: timed out", clientID)
	}
	ct := tok.(*mqtt3.ConnectToken)
	if err := tok.Error(); err != nil {
		return nil, ct.ReturnCode(), err
	}
	t.Cleanup(func() { cl.c.Disconnect(0) })
	return cl, ct.ReturnCode(), nil
}

func mustConnectRawV3(t testing.TB, addr, clientID string, o rawV3Options) *rawV3 {
	t.Helper()
	cl, rc, err := connectRawV3(t, addr, clientID, o)
	if err != nil {
		t.Fatalf("connect %s: return code 0x%02x: %v", clientID, rc, err)
	}
	return cl
}

// subscribe subscribes to one filter at QoS 1 and returns the SUBACK code.
func (c *rawV3) subscribe(filter string) byte {
	c.t.Helper()
	tok := c.c.Subscribe(filter, 1, nil)
	if !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		c.t.Fatalf("%s: subscribe %s: %v", c.id, filter, tok.Error())
	}
	// paho keys the result by the filter without a "$share/GROUP/" prefix.
	result := tok.(*mqtt3.SubscribeToken).Result()
	if len(result) != 1 {
		c.t.Fatalf("%s: subscribe %s: results %v", c.id, filter, result)
	}
	for _, code := range result {
		return code
	}
	panic("unreachable")
}

// publishAcked publishes at QoS 1 and fails the test unless it is acknowledged.
func (c *rawV3) publishAcked(topic, payload string) {
	c.t.Helper()
	tok := c.c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		c.t.Fatalf("%s: publish to %s not acknowledged: %v", c.id, topic, tok.Error())
	}
}

// publishDisconnects publishes at QoS qos (1 or 2) and fails the test
// unless the broker drops the connection without acknowledging it: MQTT
// 3.1.1 has no negative acknowledgement.
func (c *rawV3) publishDisconnects(topic, payload string, qos byte) {
	c.t.Helper()
	tok := c.c.Publish(topic, qos, false, payload)
	select {
	case <-c.lost:
	case <-time.After(waitFor):
		c.t.Fatalf("%s: still connected %v after a QoS %d publish to %s", c.id, waitFor, qos, topic)
	}
	if tok.WaitTimeout(waitFor) && tok.Error() == nil {
		c.t.Fatalf("%s: QoS %d publish to %s was acknowledged", c.id, qos, topic)
	}
}

// drop closes the socket without a DISCONNECT, as a crash would: the
// broker then publishes the client's will. (paho does not report a
// connection its owner closed as lost.)
func (c *rawV3) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn.Close()
}

// next returns the next publish received on topic; others are discarded.
func (c *rawV3) next(topic string) mqtt3.Message {
	c.t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case m := <-c.msgs:
			if m.Topic() == topic {
				return m
			}
		case <-deadline:
			c.t.Fatalf("%s: nothing on %s within %v", c.id, topic, waitFor)
		}
	}
}

// received returns what arrived within d.
func (c *rawV3) received(d time.Duration) []mqtt3.Message {
	var got []mqtt3.Message
	deadline := time.After(d)
	for {
		select {
		case m := <-c.msgs:
			got = append(got, m)
		case <-deadline:
			return got
		}
	}
}

// forgedMessage is a message event as the broker would publish it, claiming
// to come from carol.
const forgedMessage = `{"v":1,"type":"message","msg":{"conv":"01JDZZZZZZZZZZZZZZZZZZZZZZ","seq":1,"id":"01JDZZZZZZZZZZZZZZZZZZZZZZ",` +
	`"from":"carol","ts":1764451200123,"body":{"type":"text","text":"forged"}}}`

// chatTopicsForbidden are subscriptions a chat device (alice/evil) may not
// make: other users' topics, wildcards reaching into msgr/, $SYS, shared
// subscriptions on chat topics, another device of the same user, commands.
var chatTopicsForbidden = []string{
	"msgr/u/bob/in",
	"msgr/u/bob/d/phone",
	"msgr/u/bob/d/+",
	"msgr/u/bob/+",
	"msgr/u/bob/#",
	"msgr/u/+/in",
	"msgr/u/+/d/+",
	"msgr/#",
	"msgr/+/bob/in",
	"msgr",
	"#",
	"+",
	"+/+/+/+",
	"+/u/bob/in",
	"+/u/alice/in",
	"$SYS/#",
	"$share/g/msgr/u/bob/in",
	"$SHARE/g/msgr/u/bob/in",
	"$share/g/msgr/u/alice/in",
	"$share/g/#",
	"msgr/u/alice/d/phone",
	"msgr/u/alice/d/+",
	"msgr/u/alice/#",
	"msgr/u/alice/cmd/send",
	"msgr/u/alice/cmd/+",
	"msgr/u/bob/cmd/send",
	"msgr/x",
}

// chatPublishesForbidden are publishes a chat device (alice) may not make.
var chatPublishesForbidden = []struct{ topic, payload string }{
	{"msgr/u/bob/cmd/send", `{"v":1,"id":"f1","to":"alice","cmid":"forged-1","body":{"type":"text","text":"forged"}}`},
	{"msgr/u/bob/cmd/group.create", `{"v":1,"id":"f2","title":"forged","members":["alice"]}`},
	{"msgr/u/bob/in", forgedMessage},
	{"msgr/u/bob/d/phone", forgedMessage},
	{"msgr/u/alice/in", forgedMessage},
	{"msgr/u/alice/d/phone", forgedMessage},
	{"msgr/u/alice/d/evil", forgedMessage},
	{"msgr/u/alice/cmd/send/x", `{"v":1,"to":"bob","cmid":"forged-2","body":{"type":"text","text":"forged"}}`},
	{"msgr/x", forgedMessage},
	{"msgr", forgedMessage},
}

// A hostile chat device (alice/evil, authenticated) tries to read other
// users' topics and to publish into the chat namespace over MQTT 3.1.1;
// every attempt fails and real traffic is unaffected.
func TestHostileClientV3(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice", "bob")
	bob := dialV3(t, b, "bob", "phone", "pw-bob", v3Options{})
	bob.next(protocol.EvSync)
	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	alice.next(protocol.EvSync)
	evil := mustConnectRawV3(t, b.MQTTAddr, "alice/evil", rawV3Options{username: "alice", password: "pw-alice"})

	for _, f := range chatTopicsForbidden {
		if code := evil.subscribe(f); code != v3SubFailure {
			t.Errorf("subscribe %s: SUBACK 0x%02x, want 0x%02x", f, code, v3SubFailure)
		}
	}
	// In one SUBSCRIBE each filter gets its own verdict.
	tok := evil.c.SubscribeMultiple(map[string]byte{"msgr/u/alice/in": 1, "msgr/u/bob/in": 1, "msgr/u/alice/d/evil": 1}, nil)
	if !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	if got, want := tok.(*mqtt3.SubscribeToken).Result(), map[string]byte{"msgr/u/alice/in": 1, "msgr/u/bob/in": v3SubFailure, "msgr/u/alice/d/evil": 1}; !mapsEqual(got, want) {
		t.Errorf("mixed SUBSCRIBE granted %v, want %v", got, want)
	}

	// Forbidden publishes at QoS 1 and 2: disconnected, never acknowledged.
	for i, p := range chatPublishesForbidden {
		qos := byte(1 + i%2)
		c := mustConnectRawV3(t, b.MQTTAddr, "alice/evil", rawV3Options{username: "alice", password: "pw-alice"})
		c.publishDisconnects(p.topic, p.payload, qos)
	}
	// At QoS 0 they vanish; the connection stays usable.
	c := mustConnectRawV3(t, b.MQTTAddr, "alice/evil", rawV3Options{username: "alice", password: "pw-alice"})
	for _, p := range chatPublishesForbidden {
		if tok := c.c.Publish(p.topic, 0, false, p.payload); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
			t.Fatalf("QoS 0 publish: %v", tok.Error())
		}
	}
	c.publishAcked(protocol.CommandTopic("alice", protocol.OpConversations), `{"v":1}`)

	// Nothing forged reached bob or alice's real device, and nothing was
	// stored: the first real message between them is seq 1.
	quiet := []protocol.EventType{protocol.EvMessage, protocol.EvSent, protocol.EvConversation, protocol.EvError}
	bob.quiet(500*time.Millisecond, quiet...)
	alice.quiet(200*time.Millisecond, quiet...)
	sent := alice.send(protocol.Request{To: "bob", CMID: "real-1", Body: text("real")})
	if sent.Seq != 1 {
		t.Fatalf("first real message has seq %d, want 1", sent.Seq)
	}
	if m := bob.next(protocol.EvMessage).Msg; m.From != "alice" || m.Seq != 1 || bodyText(t, *m) != "real" {
		t.Fatalf("bob got %+v", m)
	}
	reply := bob.send(protocol.Request{Conv: sent.Conv, CMID: "real-2", Body: text("real too")})
	if m := alice.next(protocol.EvMessage).Msg; m.Seq != 1 || m.Conv != sent.Conv || m.From != "alice" {
		t.Fatalf("alice got %+v first", m)
	}
	if m := alice.next(protocol.EvMessage).Msg; m.Seq != reply.Seq || m.From != "bob" {
		t.Fatalf("alice got %+v", m)
	}
	bob.request(protocol.OpConversations, protocol.Request{ID: "c"})
	if ev := bob.next(protocol.EvConversations); len(ev.Convs) != 1 || ev.Convs[0].ID != sent.Conv || ev.Convs[0].LastSeq != 2 {
		t.Fatalf("bob's conversations: %+v", ev.Convs)
	}

	// The hostile device heard only alice's own inbox and device topic.
	for _, m := range evil.received(200 * time.Millisecond) {
		if m.Topic() != "msgr/u/alice/in" && m.Topic() != "msgr/u/alice/d/evil" {
			t.Errorf("alice/evil received a publish on %s: %s", m.Topic(), m.Payload())
		}
		if bytes.Contains(m.Payload(), []byte("forged")) {
			t.Errorf("alice/evil received a forged payload on %s", m.Topic())
		}
	}
}

func mapsEqual(a, b map[string]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// The same over MQTT 5, where refusals are reason codes and the hostile
// connection survives them.
func TestHostileClientV5(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice", "bob")
	bob := dialMQTT5(t, b, "bob", "phone", "pw-bob")
	evil, ca, err := connectMQTT5(t, b.MQTTAddr, chatConnect5("alice", "evil", "pw-alice"))
	if err != nil {
		t.Fatalf("connect: %v (%+v)", err, ca)
	}

	for _, f := range chatTopicsForbidden {
		if codes := evil.subscribe(f); codes[0] != v5NotAuthorized {
			t.Errorf("subscribe %s: SUBACK 0x%02x, want 0x%02x", f, codes[0], v5NotAuthorized)
		}
	}
	codes := evil.subscribe("msgr/u/alice/in", "msgr/u/bob/in", "msgr/u/alice/d/evil", "#")
	if !bytes.Equal(codes, []byte{1, v5NotAuthorized, 1, v5NotAuthorized}) {
		t.Errorf("mixed SUBSCRIBE: % x", codes)
	}

	// MQTT 5 can refuse a publish without disconnecting.
	for _, p := range chatPublishesForbidden {
		for _, qos := range []byte{1, 2} {
			if code := evil.publish(&paho.Publish{QoS: qos, Topic: p.topic, Payload: []byte(p.payload)}); code != v5NotAuthorized {
				t.Errorf("QoS %d publish to %s: reason 0x%02x, want 0x%02x", qos, p.topic, code, v5NotAuthorized)
			}
		}
	}
	// Still connected, and legitimate commands work.
	if code := evil.command(protocol.OpSend, `{"v":1,"id":"ok","to":"bob","cmid":"real-1","body":{"type":"text","text":"real"}}`, nil); code != 0 {
		t.Fatalf("legitimate send after refusals: 0x%02x", code)
	}
	ev, _ := evil.nextEvent(protocol.EvSent, protocol.EvError)
	if ev.Type != protocol.EvSent || ev.Sent.Seq != 1 {
		t.Fatalf("legitimate send: %+v", ev)
	}
	ev, p := bob.nextEvent(protocol.EvMessage)
	if ev.Msg.Seq != 1 || ev.Msg.From != "alice" || ev.Msg.Dev != "evil" || p.Topic != protocol.InboxTopic("bob") {
		t.Fatalf("bob got %+v on %s", ev.Msg, p.Topic)
	}
	bob.quiet(300*time.Millisecond, anyPublish5)
	evil.quiet(100*time.Millisecond, func(p *paho.Publish) bool {
		return !strings.HasPrefix(p.Topic, "msgr/u/alice/") || bytes.Contains(p.Payload, []byte("forged"))
	})
}

// Bad credentials and client ids are refused with the CONNACK codes of
// PROTOCOL.md section 1.
func TestConnectRefusals(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice", "bob")
	// A connected device is not disturbed by refused attempts on its id.
	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{persistent: true})
	alice.next(protocol.EvSync)

	credentials := []byte{v3BadCredential, v3NotAuthorized} // mochi answers 0x05 where PROTOCOL.md says 0x04
	tests := []struct {
		name               string
		clientID           string
		username, password string
		v3                 []byte
		v5                 byte
	}{
		{"wrong password", "alice/phone", "alice", "pw-bob", credentials, v5BadCredential},
		{"empty password", "alice/phone", "alice", "", credentials, v5BadCredential},
		{"unknown user", "mallory/phone", "mallory", "pw-mallory", credentials, v5BadCredential},
		{"anonymous", "thermo-1", "", "", credentials, v5BadCredential},
		{"anonymous with a chat id", "alice/phone", "", "", []byte{v3IDRejected}, v5BadClientID},
		{"no device", "alice", "alice", "pw-alice", []byte{v3IDRejected}, v5BadClientID},
		{"another user's id", "bob/phone", "alice", "pw-alice", []byte{v3IDRejected}, v5BadClientID},
		{"another user's id and password", "bob/phone", "alice", "pw-bob", []byte{v3IDRejected}, v5BadClientID},
		{"prefix only matches", "alicex/phone", "alice", "pw-alice", []byte{v3IDRejected}, v5BadClientID},
		{"upper case device", "alice/Phone", "alice", "pw-alice", []byte{v3IDRejected}, v5BadClientID},
		{"three levels", "alice/phone/x", "alice", "pw-alice", []byte{v3IDRejected}, v5BadClientID},
		{"wildcard device", "alice/+", "alice", "pw-alice", []byte{v3IDRejected}, v5BadClientID},
		{"empty device", "alice/", "alice", "pw-alice", []byte{v3IDRejected}, v5BadClientID},
		{"empty client id", "", "alice", "pw-alice", []byte{v3IDRejected}, v5BadClientID},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/3.1.1", func(t *testing.T) {
			c, rc, err := connectRawV3(t, b.MQTTAddr, tt.clientID, rawV3Options{username: tt.username, password: tt.password})
			if err == nil {
				c.c.Disconnect(0)
				t.Fatalf("connection accepted")
			}
			if !slices.Contains(tt.v3, rc) {
				t.Fatalf("CONNACK 0x%02x, want one of % x", rc, tt.v3)
			}
		})
		t.Run(tt.name+"/5", func(t *testing.T) {
			cp := &paho.Connect{ClientID: tt.clientID, CleanStart: true, Username: tt.username, UsernameFlag: tt.username != "",
				Password: []byte(tt.password), PasswordFlag: tt.password != ""}
			_, ca, err := connectMQTT5(t, b.MQTTAddr, cp)
			if err == nil {
				t.Fatal("connection accepted")
			}
			if ca == nil || ca.ReasonCode != tt.v5 {
				t.Fatalf("CONNACK %+v (%v), want reason 0x%02x", ca, err, tt.v5)
			}
		})
	}

	// alice/phone kept its connection throughout.
	alice.request(protocol.OpConversations, protocol.Request{ID: "still-here"})
	if ev := alice.next(protocol.EvConversations); ev.Req != "still-here" {
		t.Fatalf("alice/phone: %+v", ev)
	}
	// And the right password still works.
	dialV3(t, b, "alice", "laptop", "pw-alice", v3Options{})
}

// With anonymous access and operator grants, anonymous clients and chat
// users share the granted trees (read-only where granted so), and nobody
// gets anything else.
func TestAnonymousAndTopicGrants(t *testing.T) {
	b := brokertest.Start(t, brokertest.WithConfig(func(c *broker.Config) {
		c.AllowAnonymous = true
		c.TopicGrants = "sensors/#=rw,status/+=r"
	}))
	users(t, b, "alice")
	chat := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	chat.next(protocol.EvSync)
	anon := mustConnectRawV3(t, b.MQTTAddr, "thermo-1", rawV3Options{})
	anon5, ca, err := connectMQTT5(t, b.MQTTAddr, &paho.Connect{ClientID: "thermo-5", CleanStart: true})
	if err != nil {
		t.Fatalf("anonymous MQTT 5: %v (%+v)", err, ca)
	}
	user := mustConnectRawV3(t, b.MQTTAddr, "alice/sensors", rawV3Options{username: "alice", password: "pw-alice"})

	granted := []string{"sensors/#", "sensors/+/temp", "sensors/kitchen/temp", "status/+", "status/x", "$share/g/sensors/#"}
	refused := []string{"status/#", "status", "other/x", "#", "+/temp", "$SYS/#", "msgr/#", "msgr/u/alice/in",
		"msgr/u/alice/d/phone", "msgr/u/+/in", "$share/g/msgr/u/alice/in"}
	for _, f := range granted {
		if code := anon.subscribe(f); code != v3Granted {
			t.Errorf("anonymous 3.1.1 subscribe %s: 0x%02x", f, code)
		}
		if code := anon5.subscribe(f)[0]; code != 1 {
			t.Errorf("anonymous 5 subscribe %s: 0x%02x", f, code)
		}
		if code := user.subscribe(f); code != v3Granted {
			t.Errorf("chat user subscribe %s: 0x%02x", f, code)
		}
	}
	for _, f := range refused {
		if code := anon.subscribe(f); code != v3SubFailure {
			t.Errorf("anonymous 3.1.1 subscribe %s: 0x%02x", f, code)
		}
		if code := anon5.subscribe(f)[0]; code != v5NotAuthorized {
			t.Errorf("anonymous 5 subscribe %s: 0x%02x", f, code)
		}
	}
	for _, f := range []string{"status/#", "other/x", "#", "$SYS/#"} {
		if code := user.subscribe(f); code != v3SubFailure {
			t.Errorf("chat user subscribe %s: 0x%02x", f, code)
		}
	}

	// Everyone publishes and receives on sensors/#.
	anon.publishAcked("sensors/kitchen/temp", "21.5")
	for _, c := range []*rawV3{anon, user} {
		if m := c.next("sensors/kitchen/temp"); string(m.Payload()) != "21.5" {
			t.Fatalf("%s got %q", c.id, m.Payload())
		}
	}
	if p := anon5.next("sensors/kitchen/temp", func(p *paho.Publish) bool { return p.Topic == "sensors/kitchen/temp" }); string(p.Payload) != "21.5" {
		t.Fatalf("anonymous 5 got %q", p.Payload)
	}
	user.publishAcked("sensors/alice", "from a chat user")
	anon.next("sensors/alice")
	if code := anon5.publish(&paho.Publish{QoS: 1, Topic: "sensors/five", Payload: []byte("5")}); code != 0 {
		t.Fatalf("anonymous 5 publish to sensors/five: 0x%02x", code)
	}
	user.next("sensors/five")

	// Read-only, ungranted and chat topics: MQTT 5 gets 0x87 and stays.
	for _, topic := range []string{"status/x", "other/x", "msgr/u/alice/in", "msgr/u/alice/d/phone", "msgr/u/alice/cmd/send", "msgr/x"} {
		if code := anon5.publish(&paho.Publish{QoS: 1, Topic: topic, Payload: []byte(forgedMessage)}); code != v5NotAuthorized {
			t.Errorf("anonymous 5 publish to %s: 0x%02x, want 0x%02x", topic, code, v5NotAuthorized)
		}
	}
	// 3.1.1 clients are disconnected, chat users included.
	user.publishDisconnects("status/x", "up", 1)
	for _, topic := range []string{"status/x", "msgr/u/alice/in", "msgr/u/alice/cmd/send"} {
		c := mustConnectRawV3(t, b.MQTTAddr, "thermo-2", rawV3Options{})
		c.publishDisconnects(topic, `{"v":1,"to":"alice","cmid":"anon","body":{"type":"text","text":"forged"}}`, 1)
	}

	// Nothing reached status/+ subscribers or the chat device.
	for _, m := range anon.received(300 * time.Millisecond) {
		if !strings.HasPrefix(m.Topic(), "sensors/") {
			t.Errorf("anonymous 3.1.1 received %s: %s", m.Topic(), m.Payload())
		}
	}
	anon5.quiet(100*time.Millisecond, func(p *paho.Publish) bool { return !strings.HasPrefix(p.Topic, "sensors/") })
	chat.quiet(100*time.Millisecond, protocol.EvMessage, protocol.EvSent, protocol.EvError)
}

// An anonymous client must not connect with a chat device's client id: it
// would take over that device's session, queued messages included.
func TestAnonymousCannotUseChatClientID(t *testing.T) {
	b := brokertest.Start(t, brokertest.WithConfig(func(c *broker.Config) {
		c.AllowAnonymous = true
		c.TopicGrants = "sensors/#=rw"
	}))
	users(t, b, "alice", "bob")
	phone := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{persistent: true})
	phone.next(protocol.EvSync)
	phone.c.Disconnect(0) // alice/phone's session stays, collecting deliveries
	bob := dialV3(t, b, "bob", "phone", "pw-bob", v3Options{})
	conv := bob.send(protocol.Request{To: "alice", CMID: "secret", Body: text("for alice only")}).Conv

	c, rc, err := connectRawV3(t, b.MQTTAddr, "alice/phone", rawV3Options{persistent: true})
	if err == nil {
		leaked := c.received(time.Second)
		t.Fatalf("anonymous client accepted as alice/phone; it received %d publishes", len(leaked))
	}
	if rc != v3IDRejected {
		t.Errorf("3.1.1 CONNACK 0x%02x, want 0x%02x", rc, v3IDRejected)
	}
	_, ca, err := connectMQTT5(t, b.MQTTAddr, &paho.Connect{ClientID: "alice/phone"})
	if err == nil || ca == nil || ca.ReasonCode != v5BadClientID {
		t.Errorf("MQTT 5 CONNACK %+v (%v), want 0x%02x", ca, err, v5BadClientID)
	}
	// Any id of the USER/DEVICE form is a chat id, whether or not the user exists.
	if _, rc, err := connectRawV3(t, b.MQTTAddr, "nobody/x", rawV3Options{}); err == nil || rc != v3IDRejected {
		t.Errorf("anonymous nobody/x: CONNACK 0x%02x (%v), want 0x%02x", rc, err, v3IDRejected)
	}

	// alice's device resumes and gets its message.
	phone = dialV3(t, b, "alice", "phone", "pw-alice", v3Options{persistent: true})
	for {
		ev := phone.next(protocol.EvMessage, protocol.EvSync)
		if ev.Msg != nil && ev.Msg.Conv == conv && bodyText(t, *ev.Msg) == "for alice only" {
			break
		}
		if len(ev.Msgs) == 1 && ev.Msgs[0].Conv == conv {
			break
		}
	}
}

// mochi publishes wills without an ACL check, so a will is a publish like
// any other: on a topic the client may not publish to, the connection is
// refused (3.1.1 0x05, MQTT 5 0x87).
func TestWillCannotPublishIntoChat(t *testing.T) {
	b := brokertest.Start(t, brokertest.WithConfig(func(c *broker.Config) {
		c.AllowAnonymous = true
		c.TopicGrants = "sensors/#=rw,status/+=r"
	}))
	users(t, b, "alice", "bob")
	bob := dialV3(t, b, "bob", "phone", "pw-bob", v3Options{})
	bob.next(protocol.EvSync)
	watcher := mustConnectRawV3(t, b.MQTTAddr, "watcher", rawV3Options{})
	for _, f := range []string{"sensors/#", "status/+"} {
		if code := watcher.subscribe(f); code != v3Granted {
			t.Fatalf("watcher subscribe %s: 0x%02x", f, code)
		}
	}

	forbidden := []string{
		protocol.InboxTopic("bob"),
		protocol.DeviceTopic("bob", "phone"),
		protocol.CommandTopic("bob", protocol.OpSend),
		protocol.InboxTopic("alice"),
		protocol.CommandTopic("alice", protocol.OpSend), // wills bypass the chat hook
		"msgr/x",
		"status/x",
		"other/x",
		"$SYS/x",
		"sensors/#",
	}
	for _, topic := range forbidden {
		for _, user := range []string{"alice", ""} {
			id, password := "alice/evil", "pw-alice"
			if user == "" {
				id, password = "evil", ""
			}
			will := &rawWill{topic: topic, payload: forgedMessage, retain: true}
			c, rc, err := connectRawV3(t, b.MQTTAddr, id, rawV3Options{username: user, password: password, will: will})
			if err == nil {
				t.Errorf("%s: 3.1.1 will on %s accepted", id, topic)
				c.drop()
			} else if rc != v3NotAuthorized {
				t.Errorf("%s: 3.1.1 will on %s: CONNACK 0x%02x, want 0x%02x", id, topic, rc, v3NotAuthorized)
			}

			cp := &paho.Connect{ClientID: id, CleanStart: true, Username: user, UsernameFlag: user != "",
				Password: []byte(password), PasswordFlag: password != "",
				WillMessage: &paho.WillMessage{Topic: topic, Payload: []byte(forgedMessage), QoS: 1, Retain: true}}
			c5, ca, err := connectMQTT5(t, b.MQTTAddr, cp)
			if err == nil {
				t.Errorf("%s: MQTT 5 will on %s accepted", id, topic)
				c5.conn.Close()
				<-c5.c.Done()
			} else if ca == nil || ca.ReasonCode != v5NotAuthorized {
				t.Errorf("%s: MQTT 5 will on %s: CONNACK %+v, want 0x%02x", id, topic, ca, v5NotAuthorized)
			}
		}
	}

	for _, m := range watcher.received(300 * time.Millisecond) {
		t.Errorf("watcher received a will from a refused client on %s: %s", m.Topic(), m.Payload())
	}

	// Wills on granted topics work, for anonymous clients and chat users.
	for _, o := range []struct{ id, user, password string }{{"thermo-1", "", ""}, {"alice/thermo", "alice", "pw-alice"}} {
		topic := "sensors/" + strings.ReplaceAll(o.id, "/", "-") + "/online"
		c := mustConnectRawV3(t, b.MQTTAddr, o.id, rawV3Options{username: o.user, password: o.password,
			will: &rawWill{topic: topic, payload: "offline"}})
		c.drop()
		if m := watcher.next(topic); string(m.Payload()) != "offline" {
			t.Fatalf("will on %s: %q", topic, m.Payload())
		}
	}

	// Nothing forged reached bob, live or retained.
	bob.quiet(500*time.Millisecond, protocol.EvMessage, protocol.EvSent, protocol.EvError)
	tablet := dialV3(t, b, "bob", "tablet", "pw-bob", v3Options{})
	tablet.next(protocol.EvSync)
	tablet.quiet(300*time.Millisecond, protocol.EvMessage)
}
