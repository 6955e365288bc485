package broker_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"

	"github.com/msgrhq/msgr/broker/brokertest"
	"github.com/msgrhq/msgr/protocol"
)

// dialWS connects a chat device over MQTT-over-WebSocket with a plain
// 3.1.1 client and subscribes it to its two topics.
func dialWS(t *testing.T, b *brokertest.Broker, user, device, password string) *v3 {
	t.Helper()
	cl := &v3{t: t, user: user, device: device, events: make(chan protocol.Event, 10000)}
	opts := mqtt3.NewClientOptions().
		AddBroker("ws://" + b.WSAddr + "/mqtt").
		SetClientID(protocol.ClientID(user, device)).
		SetUsername(user).
		SetPassword(password).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(true).
		SetConnectTimeout(waitFor)
	cl.c = mqtt3.NewClient(opts)
	tok := cl.c.Connect()
	if !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("connect %s/%s over websocket: %v", user, device, tok.Error())
	}
	t.Cleanup(func() { cl.c.Disconnect(0) })
	cl.subscribe(protocol.InboxTopic(user), protocol.DeviceTopic(user, device))
	return cl
}

func TestWebSocketChat(t *testing.T) {
	b := brokertest.Start(t)
	users(t, b, "alice", "bob")
	alice := dialWS(t, b, "alice", "browser", "pw-alice")
	alice.next(protocol.EvSync)
	bob := dialV3(t, b, "bob", "phone", "pw-bob", v3Options{})
	bob.next(protocol.EvSync)

	// A 12 KB text crosses the WebSocket intact.
	long := strings.Repeat("ws ", 4000)
	sent := alice.send(protocol.Request{ID: "w1", To: "bob", CMID: "w1", Body: text(long)})
	if m := bob.next(protocol.EvMessage).Msg; m.Seq != sent.Seq || m.From != "alice" || m.Dev != "browser" || bodyText(t, *m) != long {
		t.Fatalf("bob got %+v", m)
	}
	if m := alice.next(protocol.EvMessage).Msg; m.Seq != 1 {
		t.Fatalf("alice's own copy: %+v", m)
	}
	bob.send(protocol.Request{Conv: sent.Conv, CMID: "b1", Body: text("over tcp")})
	if m := alice.next(protocol.EvMessage).Msg; m.Seq != 2 || m.From != "bob" || bodyText(t, *m) != "over tcp" {
		t.Fatalf("alice got %+v", m)
	}
	alice.request(protocol.OpHistory, protocol.Request{ID: "h", Conv: sent.Conv})
	if ev := alice.next(protocol.EvHistory); ev.Req != "h" || len(ev.Msgs) != 2 {
		t.Fatalf("history over websocket: %+v", ev)
	}

	// The ACL applies over WebSocket too.
	if codes := alice.subscribe(protocol.InboxTopic("bob")); codes[0] != v3SubFailure {
		t.Fatalf("subscribe to bob's inbox over websocket: 0x%02x", codes[0])
	}
	// A wrong password is refused.
	opts := mqtt3.NewClientOptions().AddBroker("ws://" + b.WSAddr).SetClientID("alice/other").
		SetUsername("alice").SetPassword("wrong").SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(waitFor)
	tok := mqtt3.NewClient(opts).Connect()
	if !tok.WaitTimeout(waitFor) || tok.Error() == nil {
		t.Fatal("wrong password accepted over websocket")
	}
}

// MQTT needs binary frames; a text frame ends the connection.
func TestWebSocketTextFrameCloses(t *testing.T) {
	b := brokertest.Start(t)
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: waitFor}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, resp, err := d.DialContext(ctx, "ws://"+b.WSAddr+"/mqtt", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "mqtt" {
		t.Errorf("subprotocol %q, want mqtt", got)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("CONNECT")); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(waitFor)); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.ReadMessage()
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("connection still open after a text frame: %v", err)
	}
}

func TestHTTPHealth(t *testing.T) {
	b := brokertest.Start(t)
	client := &http.Client{Timeout: waitFor}
	for _, tt := range []struct{ path, body string }{{"/healthz", "ok\n"}, {"/readyz", "ready\n"}} {
		resp, err := client.Get("http://" + b.HTTPAddr + tt.path)
		if err != nil {
			t.Fatalf("GET %s: %v", tt.path, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || string(body) != tt.body {
			t.Errorf("GET %s: %d %q, want 200 %q", tt.path, resp.StatusCode, body, tt.body)
		}
	}
	resp, err := client.Post("http://"+b.HTTPAddr+"/healthz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: %d, want 405", resp.StatusCode)
	}
	resp, err = client.Get("http://" + b.HTTPAddr + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nope: %d, want 404", resp.StatusCode)
	}
}

// A connection that never sends its CONNECT is closed by the broker, over
// TCP and WebSocket alike, instead of holding its resources forever.
func TestSilentConnectionsAreClosed(t *testing.T) {
	b := brokertest.Start(t)
	tcp, err := net.DialTimeout("tcp", b.MQTTAddr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: waitFor}
	ws, _, err := d.Dial("ws://"+b.WSAddr+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()

	// The broker allows 10 s for the CONNECT; allow it 30 s to act.
	limit := time.Now().Add(30 * time.Second)
	if err := tcp.SetReadDeadline(limit); err != nil {
		t.Fatal(err)
	}
	if err := ws.SetReadDeadline(limit); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 2)
	go func() {
		_, err := tcp.Read(make([]byte, 1))
		errc <- err
	}()
	go func() {
		_, _, err := ws.ReadMessage()
		errc <- err
	}()
	for range 2 {
		err := <-errc
		var ne net.Error
		if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("silent connection still open: %v", err)
		}
	}
}
