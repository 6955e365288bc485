package broker_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"

	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/broker/brokertest"
	"github.com/msgrhq/msgr/devcert"
	"github.com/msgrhq/msgr/protocol"
)

// tlsBroker starts a broker with development certificates and the given
// client certificate mode; it returns the broker and the certificates.
func tlsBroker(t *testing.T, clientAuth string) (*brokertest.Broker, devcert.Files) {
	t.Helper()
	certs, err := devcert.Generate(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	b := brokertest.Start(t, brokertest.WithConfig(func(c *broker.Config) {
		c.TLS.CertFile, c.TLS.KeyFile = certs.ServerCert, certs.ServerKey
		c.TLS.ClientCAFile, c.TLS.ClientAuth = certs.CACert, clientAuth
	}))
	if b.MQTTTLSAddr == "" {
		t.Fatal("no MQTT/TLS listener")
	}
	return b, certs
}

// clientTLS trusts the development CA and presents the client certificate
// when withCert is set.
func clientTLS(t *testing.T, certs devcert.Files, withCert bool) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(certs.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("bad CA file")
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if withCert {
		kp, err := tls.LoadX509KeyPair(certs.ClientCert, certs.ClientKey)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	return cfg
}

// connectMQTT5TLS is connectMQTT5 over TLS. The handshake error, if any,
// is returned as is.
func connectMQTT5TLS(t *testing.T, addr string, cfg *tls.Config, cp *paho.Connect) (*mqtt5Client, error) {
	t.Helper()
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: waitFor}, Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// TLS 1.3 reports a refused client certificate only on the first read.
	cl := &mqtt5Client{t: t, id: cp.ClientID, conn: conn, pubs: make(chan *paho.Publish, 1000)}
	cl.c = paho.NewClient(paho.ClientConfig{
		Conn:          conn,
		PacketTimeout: waitFor,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) { cl.pubs <- pr.Packet; return true, nil },
		},
	})
	cp.KeepAlive = 60
	if _, err := cl.c.Connect(ctx, cp); err != nil {
		conn.Close()
		return nil, err
	}
	t.Cleanup(func() {
		_ = cl.c.Disconnect(&paho.Disconnect{})
		conn.Close()
	})
	return cl, nil
}

func TestTLSRequiredClientCertificate(t *testing.T) {
	b, certs := tlsBroker(t, "require")
	users(t, b, "alice", "bob")

	// MQTT 5 over TLS with a client certificate: a full chat round trip.
	alice, err := connectMQTT5TLS(t, b.MQTTTLSAddr, clientTLS(t, certs, true), chatConnect5("alice", "phone", "pw-alice"))
	if err != nil {
		t.Fatalf("MQTT 5 over TLS with a client certificate: %v", err)
	}
	alice.subscribe(protocol.InboxTopic("alice"), protocol.DeviceTopic("alice", "phone"))
	alice.nextEvent(protocol.EvSync)

	// MQTT 3.1.1 (paho.mqtt.golang) over TLS, also with the certificate.
	opts := mqtt3.NewClientOptions().
		AddBroker("ssl://" + b.MQTTTLSAddr).
		SetClientID(protocol.ClientID("bob", "phone")).
		SetUsername("bob").SetPassword("pw-bob").
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(waitFor).
		SetTLSConfig(clientTLS(t, certs, true))
	bob := &v3{t: t, user: "bob", device: "phone", events: make(chan protocol.Event, 100), c: mqtt3.NewClient(opts)}
	if tok := bob.c.Connect(); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("MQTT 3.1.1 over TLS: %v", tok.Error())
	}
	t.Cleanup(func() { bob.c.Disconnect(0) })
	bob.subscribe(protocol.InboxTopic("bob"), protocol.DeviceTopic("bob", "phone"))
	bob.next(protocol.EvSync)

	if code := alice.command(protocol.OpSend, `{"v":1,"id":"t1","to":"bob","cmid":"t1","body":{"type":"text","text":"over tls"}}`, nil); code != 0 {
		t.Fatalf("send over TLS: PUBACK 0x%02x", code)
	}
	if m := bob.next(protocol.EvMessage).Msg; m.From != "alice" || bodyText(t, *m) != "over tls" {
		t.Fatalf("bob got %+v", m)
	}

	// Without a client certificate the handshake is refused.
	if _, err := connectMQTT5TLS(t, b.MQTTTLSAddr, clientTLS(t, certs, false), chatConnect5("alice", "laptop", "pw-alice")); err == nil {
		t.Fatal("a client without certificate was accepted in require mode")
	}
	// A certificate from another CA is refused too.
	other, err := devcert.Generate(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	foreign := clientTLS(t, certs, false)
	kp, err := tls.LoadX509KeyPair(other.ClientCert, other.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	foreign.Certificates = []tls.Certificate{kp}
	if _, err := connectMQTT5TLS(t, b.MQTTTLSAddr, foreign, chatConnect5("alice", "tablet", "pw-alice")); err == nil {
		t.Fatal("a client certificate of another CA was accepted")
	}
	// Nor does a client that does not trust the server's CA connect.
	if _, err := connectMQTT5TLS(t, b.MQTTTLSAddr, &tls.Config{MinVersion: tls.VersionTLS12}, chatConnect5("alice", "tv", "pw-alice")); err == nil {
		t.Fatal("a client verified a development certificate without its CA")
	}
	// TLS 1.1 is refused.
	old := clientTLS(t, certs, true)
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if _, err := connectMQTT5TLS(t, b.MQTTTLSAddr, old, chatConnect5("alice", "old", "pw-alice")); err == nil {
		t.Fatal("TLS 1.1 was accepted")
	}
}

func TestTLSRequestModeAndWSSAndHTTPS(t *testing.T) {
	b, certs := tlsBroker(t, "request")
	users(t, b, "alice")

	// request: a client without certificate is welcome, password decides.
	cl, err := connectMQTT5TLS(t, b.MQTTTLSAddr, clientTLS(t, certs, false), chatConnect5("alice", "phone", "pw-alice"))
	if err != nil {
		t.Fatalf("no client certificate in request mode: %v", err)
	}
	cl.subscribe(protocol.DeviceTopic("alice", "phone"))
	if _, err := connectMQTT5TLS(t, b.MQTTTLSAddr, clientTLS(t, certs, false), chatConnect5("alice", "laptop", "wrong")); err == nil {
		t.Fatal("wrong password accepted over TLS")
	}

	// MQTT over secure WebSocket.
	opts := mqtt3.NewClientOptions().
		AddBroker("wss://" + b.WSAddr + "/mqtt").
		SetClientID(protocol.ClientID("alice", "browser")).
		SetUsername("alice").SetPassword("pw-alice").
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(waitFor).
		SetTLSConfig(clientTLS(t, certs, true))
	ws := &v3{t: t, user: "alice", device: "browser", events: make(chan protocol.Event, 100), c: mqtt3.NewClient(opts)}
	if tok := ws.c.Connect(); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("wss: %v", tok.Error())
	}
	t.Cleanup(func() { ws.c.Disconnect(0) })
	ws.subscribe(protocol.InboxTopic("alice"), protocol.DeviceTopic("alice", "browser"))
	ws.next(protocol.EvSync)
	if ok := ws.request(protocol.OpConversations, protocol.Request{ID: "c"}); !ok {
		t.Fatal("wss: no PUBACK")
	}
	if ev := ws.next(protocol.EvConversations, protocol.EvError); ev.Type != protocol.EvConversations {
		t.Fatalf("wss: %+v", ev)
	}
	// Plain ws:// to the TLS port does not get through.
	plain := mqtt3.NewClient(mqtt3.NewClientOptions().AddBroker("ws://" + b.WSAddr + "/mqtt").
		SetClientID(protocol.ClientID("alice", "plain")).SetUsername("alice").SetPassword("pw-alice").
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(waitFor))
	if tok := plain.Connect(); tok.WaitTimeout(waitFor) && tok.Error() == nil {
		plain.Disconnect(0)
		t.Fatal("plain ws accepted on the wss listener")
	}

	// HTTPS health checks; no client certificate is needed there.
	client := &http.Client{Timeout: waitFor, Transport: &http.Transport{TLSClientConfig: clientTLS(t, certs, false)}}
	resp, err := client.Get("https://" + b.HTTPAddr + "/healthz")
	if err != nil {
		t.Fatalf("GET https /healthz: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
		t.Fatalf("GET https /healthz: %d %q", resp.StatusCode, body)
	}
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("https connection state %+v", resp.TLS)
	}
	if resp, err := (&http.Client{Timeout: waitFor}).Get("http://" + b.HTTPAddr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain http answered 200 on the https listener")
		}
	}
}

func TestTLSConfigValidation(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  func(*broker.Config)
	}{
		{"key without cert", func(c *broker.Config) { c.TLS.KeyFile = "k.pem" }},
		{"cert without key", func(c *broker.Config) { c.TLS.CertFile = "c.pem" }},
		{"require without CA", func(c *broker.Config) { c.TLS.CertFile, c.TLS.KeyFile, c.TLS.ClientAuth = "c", "k", "require" }},
		{"bad mode", func(c *broker.Config) { c.TLS.ClientAuth = "sometimes" }},
		{"bad tls addr", func(c *broker.Config) { c.TLS.CertFile, c.TLS.KeyFile, c.TLS.MQTTAddr = "c", "k", "8883" }},
		{"negative rate", func(c *broker.Config) { c.Limits.MessageRate = -1 }},
		{"rate without burst", func(c *broker.Config) { c.Limits.ConnRate, c.Limits.ConnBurst = 5, 0 }},
		{"backoff over max", func(c *broker.Config) { c.Limits.LoginBackoff, c.Limits.LoginBackoffMax = 10e9, 1e9 }},
	} {
		c := broker.DefaultConfig()
		tt.set(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
	// Missing files fail at start, with the file named.
	c := broker.DefaultConfig()
	c.TLS.CertFile, c.TLS.KeyFile = "/nonexistent/cert.pem", "/nonexistent/key.pem"
	c.MQTTAddr, c.WSAddr, c.HTTPAddr, c.TLS.MQTTAddr = "127.0.0.1:0", "", "", "127.0.0.1:0"
	c.DataDir = t.TempDir()
	store, err := broker.OpenStore(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if b, err := broker.New(c, store, slog.New(slog.DiscardHandler)); err == nil {
		_ = b.Close(context.Background())
		t.Fatal("started without certificate files")
	}
}
