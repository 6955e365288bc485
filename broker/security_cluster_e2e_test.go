package broker_test

import (
	"testing"

	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/broker/brokertest"
)

// TestClusterKicks: a revocation, a disabled user and a ban made through
// one node's admin API disconnect the clients connected to another node.
func TestClusterKicks(t *testing.T) {
	c := brokertest.NewCluster(t)
	n0 := startSecure(t, c.Node("n0"))
	n1 := startSecure(t, c.Node("n1"))
	users(t, n0.Broker, "alice", "bob", "carol")

	phone, _, err := dialWatched5(t, n1.MQTTAddr, "alice", "phone", "pw-alice")
	if err != nil {
		t.Fatal(err)
	}
	laptop, _, err := dialWatched5(t, n1.MQTTAddr, "alice", "laptop", "pw-alice")
	if err != nil {
		t.Fatal(err)
	}
	bob, _, err := dialWatched5(t, n1.MQTTAddr, "bob", "phone", "pw-bob")
	if err != nil {
		t.Fatal(err)
	}
	carol, _, err := dialWatched5(t, n1.MQTTAddr, "carol", "phone", "pw-carol")
	if err != nil {
		t.Fatal(err)
	}

	// n0 has no client of alice's: the revocation reaches n1.
	n0.admin("POST", "/admin/v1/users/alice/devices/phone/revoke", nil, 200)
	phone.waitGone(t, 0x98)
	select {
	case code := <-laptop.gone:
		t.Fatalf("alice/laptop disconnected too (0x%02x)", code)
	default:
	}

	if u := decode[broker.UserJSON](t, n0.admin("POST", "/admin/v1/users/alice/disable", nil, 200)); !u.Disabled {
		t.Fatalf("disable answered %+v", u)
	}
	laptop.waitGone(t, 0x98)

	n0.admin("POST", "/admin/v1/bans", broker.BanRequest{Kind: "user", Value: "bob"}, 201)
	bob.waitGone(t, 0x8A)
	// An address ban reaches every node's clients from that address.
	n0.admin("POST", "/admin/v1/bans", broker.BanRequest{Kind: "ip", Value: "127.0.0.1"}, 201)
	carol.waitGone(t, 0x8A)

	// And n1 refuses them afterwards, from its own store reads.
	n0.admin("DELETE", "/admin/v1/bans/ip/127.0.0.1", nil, 204)
	if c, err := tryDialV3(t, n1.Broker, "alice", "laptop", "pw-alice", v3Options{noSub: true}); err == nil {
		c.c.Disconnect(0)
		t.Error("disabled user connected to the other node")
	}
}
