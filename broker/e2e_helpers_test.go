package broker_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/msgrhq/msgr/broker/brokertest"
	"github.com/msgrhq/msgr/protocol"
)

const waitFor = 10 * time.Second

// v3 is a plain MQTT 3.1.1 chat client (paho.mqtt.golang): it speaks the
// protocol from docs/PROTOCOL.md by hand, as a third-party client would.
type v3 struct {
	t      testing.TB
	user   string
	device string
	c      paho.Client
	events chan protocol.Event
	held   []protocol.Event // received but not yet asked for
}

type v3Options struct {
	persistent bool
	noSub      bool
}

func dialV3(t testing.TB, b *brokertest.Broker, user, device, password string, o v3Options) *v3 {
	t.Helper()
	c, err := tryDialV3(t, b, user, device, password, o)
	if err != nil {
		t.Fatalf("connect %s/%s: %v", user, device, err)
	}
	return c
}

func tryDialV3(t testing.TB, b *brokertest.Broker, user, device, password string, o v3Options) (*v3, error) {
	t.Helper()
	cl := &v3{t: t, user: user, device: device, events: make(chan protocol.Event, 10000)}
	opts := paho.NewClientOptions().
		AddBroker("tcp://" + b.MQTTAddr).
		SetClientID(user + "/" + device).
		SetUsername(user).
		SetPassword(password).
		SetProtocolVersion(4).
		SetCleanSession(!o.persistent).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(true).
		SetConnectTimeout(waitFor)
	cl.c = paho.NewClient(opts)
	tok := cl.c.Connect()
	if !tok.WaitTimeout(waitFor) {
		return nil, fmt.Errorf("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { cl.c.Disconnect(0) })
	if !o.noSub {
		cl.subscribe(protocol.InboxTopic(user), protocol.DeviceTopic(user, device))
	}
	return cl, nil
}

func (c *v3) handler(_ paho.Client, m paho.Message) {
	var ev protocol.Event
	if err := json.Unmarshal(m.Payload(), &ev); err != nil {
		c.t.Errorf("%s/%s: undecodable event on %s: %v: %s", c.user, c.device, m.Topic(), err, m.Payload())
		return
	}
	c.events <- ev
}

// subscribe subscribes at QoS 1 and returns the granted codes.
func (c *v3) subscribe(filters ...string) []byte {
	c.t.Helper()
	m := map[string]byte{}
	for _, f := range filters {
		m[f] = 1
	}
	tok := c.c.SubscribeMultiple(m, c.handler)
	if !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		c.t.Fatalf("subscribe %v: %v", filters, tok.Error())
	}
	st := tok.(*paho.SubscribeToken)
	var codes []byte
	for _, f := range filters {
		codes = append(codes, st.Result()[f])
	}
	return codes
}

// command publishes a raw payload on the user's command topic and waits for
// the PUBACK; it reports whether one arrived.
func (c *v3) command(op protocol.Op, payload []byte) bool {
	c.t.Helper()
	return c.publish(protocol.CommandTopic(c.user, op), payload, 2*time.Second)
}

func (c *v3) publish(topic string, payload []byte, wait time.Duration) bool {
	c.t.Helper()
	tok := c.c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(wait) {
		return false
	}
	return tok.Error() == nil
}

func (c *v3) request(op protocol.Op, req protocol.Request) bool {
	c.t.Helper()
	req.V = protocol.Version
	b, err := json.Marshal(req)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.command(op, b)
}

// next returns the first event, in arrival order, of one of the given
// types; events of other types stay queued for later calls.
func (c *v3) next(types ...protocol.EventType) protocol.Event {
	c.t.Helper()
	match := func(ev protocol.Event) bool {
		for _, ty := range types {
			if ev.Type == ty {
				return true
			}
		}
		return false
	}
	for i, ev := range c.held {
		if match(ev) {
			c.held = append(c.held[:i], c.held[i+1:]...)
			return ev
		}
	}
	deadline := time.After(waitFor)
	for {
		select {
		case ev := <-c.events:
			if match(ev) {
				return ev
			}
			c.held = append(c.held, ev)
		case <-deadline:
			c.t.Fatalf("%s/%s: no %v event within %v (holding %d others)", c.user, c.device, types, waitFor, len(c.held))
		}
	}
}

// quiet asserts no event of the given types arrives (or is held) for d.
func (c *v3) quiet(d time.Duration, types ...protocol.EventType) {
	c.t.Helper()
	check := func(ev protocol.Event) {
		for _, ty := range types {
			if ev.Type == ty {
				c.t.Fatalf("%s/%s: unexpected %s event: %+v", c.user, c.device, ev.Type, ev)
			}
		}
	}
	for _, ev := range c.held {
		check(ev)
	}
	deadline := time.After(d)
	for {
		select {
		case ev := <-c.events:
			check(ev)
			c.held = append(c.held, ev)
		case <-deadline:
			return
		}
	}
}

// send sends a text and waits for the sent event.
func (c *v3) send(req protocol.Request) protocol.Sent {
	c.t.Helper()
	if !c.request(protocol.OpSend, req) {
		c.t.Fatalf("send %+v: no PUBACK", req)
	}
	ev := c.next(protocol.EvSent, protocol.EvError)
	if ev.Type != protocol.EvSent {
		c.t.Fatalf("send %+v: %s", req, ev.Error)
	}
	return *ev.Sent
}

func text(s string) *protocol.Body { return &protocol.Body{Type: protocol.BodyText, Text: s} }

func bodyText(t testing.TB, m protocol.Message) string {
	t.Helper()
	var b protocol.Body
	if err := json.Unmarshal(m.Body, &b); err != nil {
		t.Fatalf("body %s: %v", m.Body, err)
	}
	return b.Text
}

// users creates users with password "pw-NAME".
func users(t testing.TB, b *brokertest.Broker, names ...string) {
	t.Helper()
	for _, n := range names {
		b.AddUser(t, n, "pw-"+n)
	}
}
