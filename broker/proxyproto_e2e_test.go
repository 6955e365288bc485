package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/broker/brokertest"
)

// balancer is the address the test's "load balancer" connects from; the
// other tests' clients connect from 127.0.0.1.
const balancer = "127.0.0.2"

// dialFrom connects to addr from source address src and, when client is
// not empty, sends a PROXY protocol v1 header naming client as the source.
func dialFrom(t *testing.T, src, addr, client string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: waitFor}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	t.Cleanup(func() { conn.Close() })
	if client != "" {
		host, port, _ := net.SplitHostPort(addr)
		if _, err := fmt.Fprintf(conn, "PROXY TCP4 %s %s 40000 %s\r\n", client, host, port); err != nil {
			t.Fatal(err)
		}
	}
	return conn
}

// connectOver sends a chat device's CONNECT over conn and returns the
// CONNACK, or nil and the error when the connection ended without one.
func connectOver(t *testing.T, conn net.Conn, user, device, password string) (*paho.Connack, error) {
	t.Helper()
	c := paho.NewClient(paho.ClientConfig{Conn: conn, PacketTimeout: waitFor})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	cp := chatConnect5(user, device, password)
	cp.KeepAlive = 60
	ca, err := c.Connect(ctx, cp)
	if err == nil {
		t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	}
	return ca, err
}

// Behind a load balancer that speaks the PROXY protocol, bans and limits
// see the client's address; the balancer must send the header and nobody
// else may.
func TestProxyProtocol(t *testing.T) {
	s := startSecure(t, brokertest.WithConfig(func(c *broker.Config) { c.ProxyProtocolFrom = balancer + "/32" }))
	users(t, s.Broker, "alice")
	s.admin("POST", "/admin/v1/bans", broker.BanRequest{Kind: "ip", Value: "203.0.113.0/24"}, 201)

	// The balancer relays a client from a banned network: refused by the
	// client's address, not the balancer's.
	ca, err := connectOver(t, dialFrom(t, balancer, s.MQTTAddr, "203.0.113.7"), "alice", "phone", "pw-alice")
	if err == nil || ca == nil || ca.ReasonCode != v5BadCredential {
		t.Errorf("client from a banned network through the balancer: %v %+v, want CONNACK 0x86", err, ca)
	}
	// Another client through the same balancer is welcome.
	if ca, err := connectOver(t, dialFrom(t, balancer, s.MQTTAddr, "198.51.100.1"), "alice", "phone", "pw-alice"); err != nil || ca.ReasonCode != 0 {
		t.Fatalf("client through the balancer: %v %+v", err, ca)
	}
	if u := decode[broker.UserJSON](t, s.admin("GET", "/admin/v1/users/alice", nil, 200)); u.Connected != 1 {
		t.Errorf("alice connected devices = %d, want 1", u.Connected)
	}
	// The balancer without a header, and a client claiming an address with
	// one, get no CONNACK.
	if ca, err := connectOver(t, dialFrom(t, balancer, s.MQTTAddr, ""), "alice", "tablet", "pw-alice"); err == nil {
		t.Errorf("balancer connection without a PROXY header accepted: %+v", ca)
	}
	if ca, err := connectOver(t, dialFrom(t, "127.0.0.1", s.MQTTAddr, "198.51.100.1"), "alice", "tablet", "pw-alice"); err == nil {
		t.Errorf("PROXY header from an untrusted address accepted: %+v", ca)
	}

	// HTTP through the balancer: a banned client's login is refused, and
	// another client's accepted.
	for _, tc := range []struct {
		client string
		want   int
	}{{"203.0.113.9", http.StatusForbidden}, {"198.51.100.1", http.StatusOK}} {
		tr := &http.Transport{DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return dialFrom(t, balancer, addr, tc.client), nil
		}}
		body, err := json.Marshal(broker.LoginRequest{User: "alice", Password: "pw-alice", Device: "laptop"})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := (&http.Client{Transport: tr, Timeout: waitFor}).Post("http://"+s.HTTPAddr+"/v1/login", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatalf("login through the balancer for %s: %v", tc.client, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		if resp.StatusCode != tc.want {
			t.Errorf("login through the balancer for %s: %d, want %d", tc.client, resp.StatusCode, tc.want)
		}
	}
	if status, out := s.call("POST", "/v1/login", "", broker.LoginRequest{User: "alice", Password: "pw-alice", Device: "phone"}); status != 200 {
		t.Errorf("login from 127.0.0.1 (not through the balancer): %d %s", status, out)
	}
}
