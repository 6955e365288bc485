package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/broker/brokertest"
	"github.com/msgrhq/msgr/protocol"
)

// mqtt5Client is a plain MQTT 5 client (paho.golang's low-level client on a net.Conn
// the test owns), speaking the protocol by hand.
type mqtt5Client struct {
	t    testing.TB
	id   string
	conn net.Conn
	c    *paho.Client
	pubs chan *paho.Publish
	held []*paho.Publish // received but not yet asked for
}

// connectMQTT5 dials addr and sends cp. It returns the CONNACK (nil when none
// arrived) and the client when the connection was accepted.
func connectMQTT5(t testing.TB, addr string, cp *paho.Connect) (*mqtt5Client, *paho.Connack, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	cl := &mqtt5Client{t: t, id: cp.ClientID, conn: conn, pubs: make(chan *paho.Publish, 10000)}
	cl.c = paho.NewClient(paho.ClientConfig{
		Conn:          conn,
		PacketTimeout: waitFor,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				cl.pubs <- pr.Packet
				return true, nil
			},
		},
	})
	if cp.KeepAlive == 0 {
		cp.KeepAlive = 60
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ca, err := cl.c.Connect(ctx, cp)
	if err != nil {
		conn.Close()
		return nil, ca, err
	}
	t.Cleanup(func() {
		_ = cl.c.Disconnect(&paho.Disconnect{})
		conn.Close()
	})
	return cl, ca, nil
}

// chatConnect5 is the CONNECT of a chat device.
func chatConnect5(user, device, password string) *paho.Connect {
	return &paho.Connect{
		ClientID:     protocol.ClientID(user, device),
		Username:     user,
		UsernameFlag: true,
		Password:     []byte(password),
		PasswordFlag: true,
		CleanStart:   true,
		// Ask for reason strings on acks (they help when a test fails).
		Properties: &paho.ConnectProperties{RequestProblemInfo: true},
	}
}

// dialMQTT5 connects a chat device, subscribes to its two topics and consumes
// the sync page pushed on subscribe.
func dialMQTT5(t testing.TB, b *brokertest.Broker, user, device, password string) *mqtt5Client {
	t.Helper()
	cl, ca, err := connectMQTT5(t, b.MQTTAddr, chatConnect5(user, device, password))
	if err != nil {
		t.Fatalf("connect %s/%s: %v (connack %+v)", user, device, err, ca)
	}
	for i, code := range cl.subscribe(protocol.InboxTopic(user), protocol.DeviceTopic(user, device)) {
		if code != 1 {
			t.Fatalf("%s/%s: subscription %d granted 0x%02x", user, device, i, code)
		}
	}
	if ev, _ := cl.nextEvent(protocol.EvSync); ev.Req != "" {
		t.Fatalf("%s/%s: pushed sync page has req %q", user, device, ev.Req)
	}
	return cl
}

// subscribe subscribes to each filter at QoS 1 in one SUBSCRIBE and returns
// the reason codes, refused ones included.
func (c *mqtt5Client) subscribe(filters ...string) []byte {
	c.t.Helper()
	s := &paho.Subscribe{}
	for _, f := range filters {
		s.Subscriptions = append(s.Subscriptions, paho.SubscribeOptions{Topic: f, QoS: 1})
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	sa, err := c.c.Subscribe(ctx, s)
	if sa == nil {
		c.t.Fatalf("%s: subscribe %v: %v", c.id, filters, err)
	}
	if len(sa.Reasons) != len(filters) {
		c.t.Fatalf("%s: subscribe %v: %d reason codes", c.id, filters, len(sa.Reasons))
	}
	return sa.Reasons
}

// publish publishes p and returns the PUBACK's reason code.
func (c *mqtt5Client) publish(p *paho.Publish) byte {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	pr, err := c.c.Publish(ctx, p)
	if pr == nil {
		c.t.Fatalf("%s: publish to %s: no PUBACK: %v", c.id, p.Topic, err)
	}
	return pr.ReasonCode
}

// command publishes payload at QoS 1 on the client's command topic op with
// the given MQTT 5 properties and returns the PUBACK reason code.
func (c *mqtt5Client) command(op protocol.Op, payload string, props *paho.PublishProperties) byte {
	c.t.Helper()
	user, _, _ := protocol.ParseClientID(c.id)
	return c.publish(&paho.Publish{QoS: 1, Topic: protocol.CommandTopic(user, op), Payload: []byte(payload), Properties: props})
}

// next returns the first received publish, in arrival order, that match
// accepts; others stay queued for later calls.
func (c *mqtt5Client) next(what string, match func(*paho.Publish) bool) *paho.Publish {
	c.t.Helper()
	for i, p := range c.held {
		if match(p) {
			c.held = append(c.held[:i], c.held[i+1:]...)
			return p
		}
	}
	deadline := time.After(waitFor)
	for {
		select {
		case p := <-c.pubs:
			if match(p) {
				return p
			}
			c.held = append(c.held, p)
		case <-deadline:
			c.t.Fatalf("%s: no %s within %v (holding %d others)", c.id, what, waitFor, len(c.held))
		}
	}
}

func decodeEvent5(t testing.TB, p *paho.Publish) protocol.Event {
	t.Helper()
	var ev protocol.Event
	if err := json.Unmarshal(p.Payload, &ev); err != nil {
		t.Fatalf("undecodable event on %s: %v: %s", p.Topic, err, p.Payload)
	}
	return ev
}

// nextEvent returns the first chat event of one of the given types.
func (c *mqtt5Client) nextEvent(types ...protocol.EventType) (protocol.Event, *paho.Publish) {
	c.t.Helper()
	p := c.next("event "+joinEventTypes(types), func(p *paho.Publish) bool {
		var ev protocol.Event
		if !strings.HasPrefix(p.Topic, protocol.Namespace+"/") || json.Unmarshal(p.Payload, &ev) != nil {
			return false
		}
		for _, ty := range types {
			if ev.Type == ty {
				return true
			}
		}
		return false
	})
	return decodeEvent5(c.t, p), p
}

// quiet asserts that nothing match accepts arrives (or is held) for d.
func (c *mqtt5Client) quiet(d time.Duration, match func(*paho.Publish) bool) {
	c.t.Helper()
	for _, p := range c.held {
		if match(p) {
			c.t.Fatalf("%s: unexpected publish on %s: %s", c.id, p.Topic, p.Payload)
		}
	}
	deadline := time.After(d)
	for {
		select {
		case p := <-c.pubs:
			if match(p) {
				c.t.Fatalf("%s: unexpected publish on %s: %s", c.id, p.Topic, p.Payload)
			}
			c.held = append(c.held, p)
		case <-deadline:
			return
		}
	}
}

func joinEventTypes(types []protocol.EventType) string {
	s := make([]string, len(types))
	for i, ty := range types {
		s[i] = string(ty)
	}
	return strings.Join(s, "|")
}

func anyPublish5(*paho.Publish) bool { return true }

func TestV5SendReplyAndCorrelation(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice", "bob")
	phone := dialMQTT5(t, b, "alice", "phone", "pw-alice")
	laptop := dialMQTT5(t, b, "alice", "laptop", "pw-alice")
	bob := dialMQTT5(t, b, "bob", "phone", "pw-bob")

	// Response Topic = own device topic: the reply goes there, with the
	// request's correlation data; the PUBACK is a success.
	corr := []byte{0x00, 0xff, 'c', '-', '1'}
	code := phone.command(protocol.OpSend, `{"v":1,"id":"r1","to":"bob","cmid":"m1","body":{"type":"text","text":"hi bob"}}`,
		&paho.PublishProperties{ResponseTopic: protocol.DeviceTopic("alice", "phone"), CorrelationData: corr})
	if code != 0 {
		t.Fatalf("send PUBACK 0x%02x, want success", code)
	}
	ev, p := phone.nextEvent(protocol.EvSent, protocol.EvError)
	if ev.Type != protocol.EvSent || ev.Req != "r1" || ev.Op != protocol.OpSend || ev.Sent.Seq != 1 || ev.Sent.CMID != "m1" {
		t.Fatalf("reply %+v (sent %+v)", ev, ev.Sent)
	}
	if p.Topic != protocol.DeviceTopic("alice", "phone") {
		t.Fatalf("reply on %s", p.Topic)
	}
	if p.Properties == nil || !bytes.Equal(p.Properties.CorrelationData, corr) {
		t.Fatalf("reply correlation data %+v, want %q", p.Properties, corr)
	}
	conv := ev.Sent.Conv

	// The message reaches every device of both users, without the
	// request's correlation data.
	for _, c := range []*mqtt5Client{phone, laptop, bob} {
		ev, p := c.nextEvent(protocol.EvMessage)
		if ev.Msg.Conv != conv || ev.Msg.Seq != 1 || ev.Msg.From != "alice" || p.Topic != protocol.InboxTopic(strings.Split(c.id, "/")[0]) {
			t.Fatalf("%s: %+v on %s", c.id, ev.Msg, p.Topic)
		}
		if p.Properties != nil && len(p.Properties.CorrelationData) > 0 {
			t.Fatalf("%s: inbox event carries correlation data %q", c.id, p.Properties.CorrelationData)
		}
	}

	// Response Topic = another device of the same user: allowed.
	code = phone.command(protocol.OpHistory, `{"v":1,"id":"h1","conv":"`+conv+`"}`,
		&paho.PublishProperties{ResponseTopic: protocol.DeviceTopic("alice", "laptop"), CorrelationData: []byte("to-laptop")})
	if code != 0 {
		t.Fatalf("history PUBACK 0x%02x", code)
	}
	ev, p = laptop.nextEvent(protocol.EvHistory, protocol.EvError)
	if ev.Type != protocol.EvHistory || ev.Req != "h1" || len(ev.Msgs) != 1 || string(p.Properties.CorrelationData) != "to-laptop" {
		t.Fatalf("history reply on laptop: %+v", ev)
	}

	// Response Topic = someone else's topic, or anything not a device
	// topic of the sender's user: ignored, the reply goes to the sending
	// device's own topic, and nobody else hears of it.
	for i, rt := range []string{
		protocol.DeviceTopic("bob", "phone"),
		protocol.InboxTopic("bob"),
		protocol.InboxTopic("alice"),
		protocol.CommandTopic("alice", protocol.OpSend),
		"sensors/x",
		"msgr/u/+/d/phone",
	} {
		id := "rt" + string(rune('a'+i))
		code := phone.command(protocol.OpConversation, `{"v":1,"id":"`+id+`","conv":"`+conv+`"}`,
			&paho.PublishProperties{ResponseTopic: rt, CorrelationData: []byte(id)})
		if code != 0 {
			t.Fatalf("response topic %s: PUBACK 0x%02x", rt, code)
		}
		ev, p := phone.nextEvent(protocol.EvConversation, protocol.EvError)
		if ev.Type != protocol.EvConversation || ev.Req != id || p.Topic != protocol.DeviceTopic("alice", "phone") {
			t.Fatalf("response topic %s: reply %+v on %s", rt, ev, p.Topic)
		}
	}
	bob.quiet(300*time.Millisecond, anyPublish5)
	laptop.quiet(100*time.Millisecond, func(p *paho.Publish) bool { return p.Topic != protocol.InboxTopic("alice") })

	// Without properties the reply goes to the device topic with no
	// correlation data, and the id is echoed.
	if code := bob.command(protocol.OpSend, `{"v":1,"id":"b1","conv":"`+conv+`","cmid":"b1","body":{"type":"text","text":"hi"}}`, nil); code != 0 {
		t.Fatalf("bob send PUBACK 0x%02x", code)
	}
	ev, p = bob.nextEvent(protocol.EvSent, protocol.EvError)
	if ev.Type != protocol.EvSent || ev.Req != "b1" || ev.Sent.Seq != 2 || p.Topic != protocol.DeviceTopic("bob", "phone") ||
		(p.Properties != nil && len(p.Properties.CorrelationData) > 0) {
		t.Fatalf("bob's reply %+v on %s", ev, p.Topic)
	}
}

func TestV5ErrorReasonCodes(t *testing.T) {
	b := brokertest.Start(t, brokertest.WithConfig(func(c *broker.Config) {
		c.MaxTextBytes, c.MaxPayloadBytes = 100, 2048
	}))
	users(t, b, "alice", "bob", "carol")
	alice := dialMQTT5(t, b, "alice", "phone", "pw-alice")
	carol := dialMQTT5(t, b, "carol", "phone", "pw-carol")

	if code := alice.command(protocol.OpSend, `{"v":1,"to":"bob","cmid":"m1","body":{"type":"text","text":"hi"}}`, nil); code != 0 {
		t.Fatalf("send PUBACK 0x%02x", code)
	}
	direct, _ := alice.nextEvent(protocol.EvSent)
	conv := direct.Sent.Conv
	alice.command(protocol.OpGroupCreate, `{"v":1,"id":"g","title":"Trip","members":["bob"]}`, nil)
	gev, _ := alice.nextEvent(protocol.EvConversation)
	group := gev.Conv.ID
	bob := dialMQTT5(t, b, "bob", "phone", "pw-bob")
	unknown := "01JDZZZZZZZZZZZZZZZZZZZZZZ"

	const (
		payloadFormatInvalid = 0x99
		packetTooLarge       = 0x95
		notAuthorized        = 0x87
		implSpecific         = 0x83
	)
	tests := []struct {
		name    string
		cl      *mqtt5Client
		op      protocol.Op
		payload string
		reason  byte
		code    protocol.Code
		req     string // the request id the error event must echo
	}{
		{"unknown field", alice, protocol.OpSend, `{"v":1,"id":"e1","to":"bob","cmid":"x","body":{"type":"text","text":"x"},"colour":1}`, payloadFormatInvalid, protocol.CodeBadRequest, "e1"},
		{"field of the wrong type", alice, protocol.OpSync, `{"v":1,"id":"e2","limit":"ten"}`, payloadFormatInvalid, protocol.CodeBadRequest, "e2"},
		{"missing cmid", alice, protocol.OpSend, `{"v":1,"id":"e3","to":"bob","body":{"type":"text","text":"x"}}`, payloadFormatInvalid, protocol.CodeBadRequest, "e3"},
		{"field of another op", alice, protocol.OpSync, `{"v":1,"id":"e4","conv":"` + conv + `"}`, payloadFormatInvalid, protocol.CodeBadRequest, "e4"},
		{"system body", alice, protocol.OpSend, `{"v":1,"id":"e5","conv":"` + conv + `","cmid":"x","body":{"type":"system","event":"member_added"}}`, payloadFormatInvalid, protocol.CodeBadRequest, "e5"},
		{"not json", alice, protocol.OpSend, `hello`, payloadFormatInvalid, protocol.CodeBadRequest, ""},
		{"bad version", alice, protocol.OpSend, `{"v":2,"id":"e6","to":"bob","cmid":"x","body":{"type":"text","text":"x"}}`, payloadFormatInvalid, protocol.CodeBadVersion, "e6"},
		{"text too large", alice, protocol.OpSend, `{"v":1,"id":"e7","conv":"` + conv + `","cmid":"x","body":{"type":"text","text":"` + strings.Repeat("a", 101) + `"}}`, packetTooLarge, protocol.CodeTooLarge, "e7"},
		// Over the payload limit the broker does not parse the request, so
		// only the correlation data identifies it.
		{"payload too large", alice, protocol.OpSend, `{"v":1,"id":"e8","pad":"` + strings.Repeat("a", 2048) + `"}`, packetTooLarge, protocol.CodeTooLarge, ""},
		{"not a member send", carol, protocol.OpSend, `{"v":1,"id":"e9","conv":"` + conv + `","cmid":"x","body":{"type":"text","text":"let me in"}}`, notAuthorized, protocol.CodeNotMember, "e9"},
		{"not a member history", carol, protocol.OpHistory, `{"v":1,"id":"e10","conv":"` + conv + `"}`, notAuthorized, protocol.CodeNotMember, "e10"},
		{"forbidden", bob, protocol.OpGroupAdd, `{"v":1,"id":"e11","conv":"` + group + `","user":"carol"}`, notAuthorized, protocol.CodeForbidden, "e11"},
		{"unknown conversation", alice, protocol.OpSend, `{"v":1,"id":"e12","conv":"` + unknown + `","cmid":"x","body":{"type":"text","text":"x"}}`, implSpecific, protocol.CodeNotFound, "e12"},
		{"unknown user", alice, protocol.OpSend, `{"v":1,"id":"e13","to":"nobody","cmid":"x","body":{"type":"text","text":"x"}}`, implSpecific, protocol.CodeNotFound, "e13"},
		{"unknown op", alice, protocol.Op("launch"), `{"v":1,"id":"e14"}`, implSpecific, protocol.CodeUnknownOp, "e14"},
		{"already a member", alice, protocol.OpGroupAdd, `{"v":1,"id":"e15","conv":"` + group + `","user":"bob"}`, implSpecific, protocol.CodeExists, "e15"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			corr := []byte{byte(i), 'x'}
			code := tt.cl.command(tt.op, tt.payload, &paho.PublishProperties{CorrelationData: corr})
			if code != tt.reason {
				t.Errorf("PUBACK reason 0x%02x, want 0x%02x", code, tt.reason)
			}
			ev, p := tt.cl.nextEvent(protocol.EvError, protocol.EvSent, protocol.EvSync, protocol.EvHistory, protocol.EvConversation)
			if ev.Type != protocol.EvError || ev.Error.Code != tt.code || ev.Error.Message == "" {
				t.Fatalf("got %+v (error %+v), want error %s", ev, ev.Error, tt.code)
			}
			if ev.Req != tt.req || ev.Op != tt.op {
				t.Errorf("error event req %q op %q, want req %q op %q", ev.Req, ev.Op, tt.req, tt.op)
			}
			if p.Properties == nil || !bytes.Equal(p.Properties.CorrelationData, corr) {
				t.Errorf("error event correlation data %+v, want %q", p.Properties, corr)
			}
		})
	}

	// None of that was stored or announced; the conversation goes on.
	c, err := b.Store().GetConversation(t.Context(), conv)
	if err != nil || c.LastSeq != 1 {
		t.Fatalf("conversation after the errors: %+v, %v", c, err)
	}
	if code := alice.command(protocol.OpSend, `{"v":1,"id":"ok","conv":"`+conv+`","cmid":"m2","body":{"type":"text","text":"still here"}}`, nil); code != 0 {
		t.Fatalf("send after errors: PUBACK 0x%02x", code)
	}
	if ev, _ := alice.nextEvent(protocol.EvSent, protocol.EvError); ev.Type != protocol.EvSent || ev.Sent.Seq != 2 || ev.Req != "ok" {
		t.Fatalf("send after errors: %+v", ev)
	}
}

// QoS 0 requests get the same events and no PUBACK.
func TestV5QoS0Request(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice", "bob")
	alice := dialMQTT5(t, b, "alice", "phone", "pw-alice")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for _, payload := range []string{
		`{"v":1,"id":"q1","to":"bob","cmid":"m1","body":{"type":"text","text":"at most once"}}`,
		`{"v":1,"id":"q2","to":"nobody","cmid":"m1","body":{"type":"text","text":"x"}}`,
	} {
		if _, err := alice.c.Publish(ctx, &paho.Publish{QoS: 0, Topic: protocol.CommandTopic("alice", protocol.OpSend), Payload: []byte(payload),
			Properties: &paho.PublishProperties{CorrelationData: []byte("qos0")}}); err != nil {
			t.Fatal(err)
		}
	}
	if ev, p := alice.nextEvent(protocol.EvSent, protocol.EvError); ev.Type != protocol.EvSent || ev.Req != "q1" || string(p.Properties.CorrelationData) != "qos0" {
		t.Fatalf("first reply %+v", ev)
	}
	if ev, _ := alice.nextEvent(protocol.EvSent, protocol.EvError); ev.Type != protocol.EvError || ev.Req != "q2" || ev.Error.Code != protocol.CodeNotFound {
		t.Fatalf("second reply %+v", ev)
	}
}
