package broker_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/broker/brokertest"
	"github.com/msgrhq/msgr/protocol"
)

func withLimits(f func(*broker.Config)) brokertest.Option { return brokertest.WithConfig(f) }

// scrape returns the broker's metrics as "name{labels}" -> value.
func scrape(t testing.TB, b *brokertest.Broker) map[string]float64 {
	t.Helper()
	resp, err := (&http.Client{Timeout: waitFor}).Get("http://" + b.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// v5Connack connects with cp and returns the CONNACK reason code (0 when
// accepted; the connection is then closed when the test ends).
func v5Connack(t *testing.T, addr string, cp *paho.Connect) byte {
	t.Helper()
	_, ca, err := connectMQTT5(t, addr, cp)
	if ca == nil {
		t.Fatalf("connect %s: no CONNACK: %v", cp.ClientID, err)
	}
	return ca.ReasonCode
}

// v3Connack connects a 3.1.1 client and returns its CONNACK return code.
func v3Connack(t *testing.T, b *brokertest.Broker, user, device, password string) byte {
	t.Helper()
	c := mqtt3.NewClient(mqtt3.NewClientOptions().AddBroker("tcp://" + b.MQTTAddr).
		SetClientID(protocol.ClientID(user, device)).SetUsername(user).SetPassword(password).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(waitFor))
	tok := c.Connect()
	if !tok.WaitTimeout(waitFor) {
		t.Fatal("3.1.1 connect timed out")
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return tok.(*mqtt3.ConnectToken).ReturnCode()
}

func sendJSON(id, to, cmid string) string {
	return fmt.Sprintf(`{"v":1,"id":%q,"to":%q,"cmid":%q,"body":{"type":"text","text":"hello %s"}}`, id, to, cmid, cmid)
}

// Over the per-user message rate, an MQTT 5 send gets PUBACK 0x96 and an
// error event, and is not stored; every acknowledged send is stored.
func TestMessageRateMQTT5(t *testing.T) {
	b := brokertest.Start(t, withLimits(func(c *broker.Config) { c.Limits.MessageRate, c.Limits.MessageBurst = 0.5, 3 }))
	users(t, b, "alice", "bob")
	alice := dialMQTT5(t, b, "alice", "phone", "pw-alice")
	acked := 0
	var conv string
	for i := range 5 {
		id := fmt.Sprintf("m%d", i)
		code := alice.command(protocol.OpSend, sendJSON(id, "bob", id), nil)
		ev, _ := alice.nextEvent(protocol.EvSent, protocol.EvError)
		switch {
		case i < 3 && code == 0 && ev.Type == protocol.EvSent:
			acked++
			conv = ev.Sent.Conv
		case i >= 3 && code == packets96 && ev.Type == protocol.EvError && ev.Error.Code == protocol.CodeRateLimited && ev.Req == id:
		default:
			t.Fatalf("send %d: PUBACK 0x%02x, event %+v %v", i, code, ev, ev.Error)
		}
	}
	// A refused send did not reach the store: history has exactly the
	// acknowledged ones.
	if code := alice.command(protocol.OpHistory, fmt.Sprintf(`{"v":1,"id":"h","conv":%q}`, conv), nil); code != 0 {
		t.Fatalf("history PUBACK 0x%02x", code)
	}
	if ev, _ := alice.nextEvent(protocol.EvHistory); len(ev.Msgs) != acked {
		t.Fatalf("history has %d messages, %d were acknowledged", len(ev.Msgs), acked)
	}
	m := scrape(t, b)
	if m[`msgr_limit_hits_total{limit="message_rate"}`] != 2 || m[`msgr_errors_total{kind="chat_rate_limited"}`] != 2 {
		t.Fatalf("metrics: limit hits %v, rate_limited errors %v", m[`msgr_limit_hits_total{limit="message_rate"}`], m[`msgr_errors_total{kind="chat_rate_limited"}`])
	}
	// The bucket refills: one token every two seconds.
	time.Sleep(2100 * time.Millisecond)
	if code := alice.command(protocol.OpSend, sendJSON("late", "bob", "late"), nil); code != 0 {
		t.Fatalf("send after the refill: PUBACK 0x%02x", code)
	}
}

const packets96 = 0x96 // PUBACK: message rate too high

// MQTT 3.1.1 has no refusal code: a send over the rate gets the error event
// and no PUBACK, so the client still holds it as unacknowledged.
func TestMessageRateMQTT311(t *testing.T) {
	b := brokertest.Start(t, withLimits(func(c *broker.Config) { c.Limits.MessageRate, c.Limits.MessageBurst = 0.1, 2 }))
	users(t, b, "alice", "bob")
	alice := dialV3(t, b, "alice", "phone", "pw-alice", v3Options{})
	alice.next(protocol.EvSync)
	alice.send(protocol.Request{ID: "1", To: "bob", CMID: "1", Body: text("one")})
	alice.send(protocol.Request{ID: "2", To: "bob", CMID: "2", Body: text("two")})
	if alice.publish(protocol.CommandTopic("alice", protocol.OpSend), []byte(sendJSON("3", "bob", "3")), time.Second) {
		t.Fatal("a send over the rate was acknowledged")
	}
	if ev := alice.next(protocol.EvSent, protocol.EvError); ev.Type != protocol.EvError || ev.Error.Code != protocol.CodeRateLimited || ev.Req != "3" {
		t.Fatalf("over the rate: %+v", ev)
	}
	// Still connected: other commands work.
	if !alice.request(protocol.OpConversations, protocol.Request{ID: "c"}) {
		t.Fatal("conversations: no PUBACK")
	}
	if ev := alice.next(protocol.EvConversations, protocol.EvError); ev.Type != protocol.EvConversations || len(ev.Convs) != 1 || ev.Convs[0].LastSeq != 2 {
		t.Fatalf("conversations after the refusal: %+v", ev)
	}
}

// The command rate covers every command, not only sends.
func TestCommandRate(t *testing.T) {
	b := brokertest.Start(t, withLimits(func(c *broker.Config) { c.Limits.CommandRate, c.Limits.CommandBurst = 0.1, 2 }))
	users(t, b, "alice")
	alice := dialMQTT5(t, b, "alice", "phone", "pw-alice")
	for i, want := range []byte{0, 0, packets96} {
		if code := alice.command(protocol.OpConversations, `{"v":1,"id":"c"}`, nil); code != want {
			t.Fatalf("command %d: PUBACK 0x%02x, want 0x%02x", i, code, want)
		}
	}
	if ev, _ := alice.nextEvent(protocol.EvError); ev.Error.Code != protocol.CodeRateLimited {
		t.Fatalf("error %+v", ev.Error)
	}
	if v := scrape(t, b)[`msgr_limit_hits_total{limit="command_rate"}`]; v != 1 {
		t.Fatalf("command_rate hits %v", v)
	}
}

// Connection attempts per address: over the burst, CONNACK 0x9F (MQTT 5)
// or 3 "server unavailable" (3.1.1).
func TestConnectionRatePerAddress(t *testing.T) {
	b := brokertest.Start(t, withLimits(func(c *broker.Config) { c.Limits.ConnRate, c.Limits.ConnBurst = 0.01, 3 }))
	users(t, b, "alice")
	for i := range 3 {
		if code := v5Connack(t, b.MQTTAddr, chatConnect5("alice", fmt.Sprintf("d%d", i), "pw-alice")); code != 0 {
			t.Fatalf("connection %d: CONNACK 0x%02x", i, code)
		}
	}
	if code := v5Connack(t, b.MQTTAddr, chatConnect5("alice", "d3", "pw-alice")); code != 0x9F {
		t.Fatalf("over the rate: CONNACK 0x%02x, want 0x9F", code)
	}
	if code := v3Connack(t, b, "alice", "d4", "pw-alice"); code != 3 {
		t.Fatalf("3.1.1 over the rate: return code %d, want 3", code)
	}
	if v := scrape(t, b)[`msgr_limit_hits_total{limit="connection_rate"}`]; v != 2 {
		t.Fatalf("connection_rate hits %v", v)
	}
}

// Failed logins of one user back off exponentially; a success resets.
func TestLoginThrottlePerUser(t *testing.T) {
	b := brokertest.Start(t, withLimits(func(c *broker.Config) {
		c.Limits.LoginFailuresUser, c.Limits.LoginFailuresIP = 2, 1000
		c.Limits.LoginBackoff, c.Limits.LoginBackoffMax = time.Second, 4*time.Second
	}))
	users(t, b, "alice", "bob")
	for i := range 3 {
		if code := v5Connack(t, b.MQTTAddr, chatConnect5("alice", "phone", "guess")); code != 0x86 {
			t.Fatalf("wrong password %d: CONNACK 0x%02x, want 0x86", i, code)
		}
	}
	// Backing off: even the right password is refused, without a check.
	if code := v5Connack(t, b.MQTTAddr, chatConnect5("alice", "phone", "pw-alice")); code != 0x9F {
		t.Fatalf("during backoff: CONNACK 0x%02x, want 0x9F", code)
	}
	if code := v3Connack(t, b, "alice", "old", "pw-alice"); code != 5 {
		t.Fatalf("3.1.1 during backoff: return code %d, want 5", code)
	}
	// Other users are not affected.
	if code := v5Connack(t, b.MQTTAddr, chatConnect5("bob", "phone", "pw-bob")); code != 0 {
		t.Fatalf("bob: CONNACK 0x%02x", code)
	}
	time.Sleep(1100 * time.Millisecond)
	if code := v5Connack(t, b.MQTTAddr, chatConnect5("alice", "phone", "pw-alice")); code != 0 {
		t.Fatalf("after the backoff: CONNACK 0x%02x", code)
	}
	// The success forgot the failures: two more wrong passwords are free.
	for i := range 2 {
		if code := v5Connack(t, b.MQTTAddr, chatConnect5("alice", "tablet", "guess")); code != 0x86 {
			t.Fatalf("wrong password %d after reset: CONNACK 0x%02x", i, code)
		}
	}
	if code := v5Connack(t, b.MQTTAddr, chatConnect5("alice", "tablet", "pw-alice")); code != 0 {
		t.Fatalf("right password after two free failures: CONNACK 0x%02x", code)
	}
	m := scrape(t, b)
	if m[`msgr_limit_hits_total{limit="login_throttle"}`] != 2 || m[`msgr_connections_refused_total{reason="not_authorized"}`] != 5 {
		t.Fatalf("metrics: %v throttled, %v not authorized", m[`msgr_limit_hits_total{limit="login_throttle"}`], m[`msgr_connections_refused_total{reason="not_authorized"}`])
	}
}

// Failed logins from one address against many users throttle the address.
func TestLoginThrottlePerAddress(t *testing.T) {
	b := brokertest.Start(t, withLimits(func(c *broker.Config) {
		c.Limits.LoginFailuresUser, c.Limits.LoginFailuresIP = 1000, 3
		c.Limits.LoginBackoff, c.Limits.LoginBackoffMax = 5*time.Second, time.Minute
	}))
	users(t, b, "alice")
	for i := range 4 {
		if code := v5Connack(t, b.MQTTAddr, chatConnect5(fmt.Sprintf("user%d", i), "d", "guess")); code != 0x86 {
			t.Fatalf("spray %d: CONNACK 0x%02x", i, code)
		}
	}
	if code := v5Connack(t, b.MQTTAddr, chatConnect5("alice", "phone", "pw-alice")); code != 0x9F {
		t.Fatalf("from a throttled address: CONNACK 0x%02x, want 0x9F", code)
	}
}

// Connections per user: further ones are refused with CONNACK 0x97; taking
// over an existing client id is not a new connection.
func TestMaxConnectionsPerUser(t *testing.T) {
	b := brokertest.Start(t, withLimits(func(c *broker.Config) { c.Limits.MaxConnsPerUser = 2 }))
	users(t, b, "alice", "bob")
	dialMQTT5(t, b, "alice", "a", "pw-alice")
	second := dialMQTT5(t, b, "alice", "b", "pw-alice")
	if code := v5Connack(t, b.MQTTAddr, chatConnect5("alice", "c", "pw-alice")); code != 0x97 {
		t.Fatalf("third connection: CONNACK 0x%02x, want 0x97", code)
	}
	if code := v3Connack(t, b, "alice", "d", "pw-alice"); code != 3 {
		t.Fatalf("3.1.1 third connection: return code %d, want 3", code)
	}
	if code := v5Connack(t, b.MQTTAddr, chatConnect5("bob", "a", "pw-bob")); code != 0 {
		t.Fatalf("bob: CONNACK 0x%02x", code)
	}
	// Takeover of alice/a: allowed.
	dialMQTT5(t, b, "alice", "a", "pw-alice")
	// When one disconnects, a new device fits again.
	_ = second.c.Disconnect(&paho.Disconnect{})
	deadline := time.Now().Add(waitFor)
	for {
		code := v5Connack(t, b.MQTTAddr, chatConnect5("alice", "c", "pw-alice"))
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a disconnect: CONNACK 0x%02x", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v := scrape(t, b)[`msgr_limit_hits_total{limit="connections_per_user"}`]; v < 2 {
		t.Fatalf("connections_per_user hits %v", v)
	}
}

// Subscriptions per client: filters over the limit get SUBACK 0x8F (MQTT 5)
// or 0x80 (3.1.1) and an error event; re-subscribing is free.
func TestMaxSubscriptions(t *testing.T) {
	b := brokertest.Start(t, withLimits(func(c *broker.Config) {
		c.Limits.MaxSubscriptions = 3
		c.TopicGrants = "t/#=rw"
	}))
	users(t, b, "alice")
	alice, _, err := connectMQTT5(t, b.MQTTAddr, chatConnect5("alice", "phone", "pw-alice"))
	if err != nil {
		t.Fatal(err)
	}
	if codes := alice.subscribe(protocol.DeviceTopic("alice", "phone"), "t/1"); codes[0] != 1 || codes[1] != 1 {
		t.Fatalf("SUBACK % x", codes)
	}
	alice.nextEvent(protocol.EvSync)
	// Let the sync page's PUBACK land: mochi refuses a SUBSCRIBE whose
	// packet id equals a delivery still in flight.
	time.Sleep(200 * time.Millisecond)
	codes := alice.subscribe("t/2", "t/3", "t/1")
	if codes[0] != 1 || codes[1] != 0x8F || codes[2] != 1 {
		t.Fatalf("SUBACK % x, want 01 8f 01", codes)
	}
	if ev, _ := alice.nextEvent(protocol.EvError); ev.Error.Code != protocol.CodeTooLarge || !strings.Contains(ev.Error.Message, "subscriptions") {
		t.Fatalf("error event %+v", ev.Error)
	}
	// The refused filter really is not subscribed: a publish on it does not arrive.
	if code := alice.publish(&paho.Publish{QoS: 1, Topic: "t/3", Payload: []byte("x")}); code != 0 {
		t.Fatalf("publish t/3: 0x%02x", code)
	}
	alice.quiet(300*time.Millisecond, func(p *paho.Publish) bool { return p.Topic == "t/3" })

	v3c := dialV3(t, b, "alice", "old", "pw-alice", v3Options{})
	v3c.next(protocol.EvSync)
	time.Sleep(200 * time.Millisecond)
	// paho.mqtt.golang orders a multiple subscription by map iteration:
	// one of the two filters fits, whichever comes first.
	if codes := v3c.subscribe("t/1", "t/2"); codes[0]+codes[1] != 0x81 || (codes[0] != 1 && codes[1] != 1) {
		t.Fatalf("3.1.1 SUBACK % x, want one 01 and one 80", codes)
	}
	if v := scrape(t, b)[`msgr_limit_hits_total{limit="subscriptions"}`]; v != 2 {
		t.Fatalf("subscriptions hits %v", v)
	}
}

// The HTTP login endpoint shares the failed-login backoff with MQTT: wrong
// passwords over HTTP lock MQTT logins out too, and the reverse.
func TestLoginThrottleHTTP(t *testing.T) {
	s := startSecure(t, withLimits(func(c *broker.Config) {
		c.Limits.LoginFailuresUser, c.Limits.LoginFailuresIP = 2, 1000
		c.Limits.LoginBackoff, c.Limits.LoginBackoffMax = 2*time.Second, 4*time.Second
	}))
	users(t, s.Broker, "alice")
	for i := range 3 {
		status, out := s.call("POST", "/v1/login", "", broker.LoginRequest{User: "alice", Password: "guess", Device: "web"})
		if status != http.StatusUnauthorized {
			t.Fatalf("wrong password %d over HTTP: %d %s", i, status, out)
		}
	}
	if status, out := s.call("POST", "/v1/login", "", broker.LoginRequest{User: "alice", Password: "pw-alice", Device: "web"}); status != http.StatusTooManyRequests {
		t.Fatalf("right password during backoff: %d %s, want 429", status, out)
	}
	if code := v5Connack(t, s.MQTTAddr, chatConnect5("alice", "phone", "pw-alice")); code != 0x9F {
		t.Fatalf("MQTT during the HTTP backoff: CONNACK 0x%02x, want 0x9F", code)
	}
	time.Sleep(2100 * time.Millisecond)
	s.login("alice", "web")
}
