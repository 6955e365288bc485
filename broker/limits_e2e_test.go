package broker_test

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/broker/brokertest"
)

// A packet declaring more than max-packet-bytes is refused before the
// broker allocates it: the connection is closed.
func TestOversizePacketClosesConnection(t *testing.T) {
	b := brokertest.Start(t, brokertest.WithConfig(func(c *broker.Config) { c.MaxPacketBytes = 128 * 1024 }))
	conn, err := net.DialTimeout("tcp", b.MQTTAddr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// CONNECT fixed header with a remaining length of 200 MiB
	// (variable-byte integer 0x80 0x80 0x80 0x64), and nothing after it.
	if _, err := conn.Write([]byte{0x10, 0x80, 0x80, 0x80, 0x64}); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(waitFor))
	if n, err := conn.Read(make([]byte, 16)); err != io.EOF {
		t.Fatalf("read after an oversize header: %d bytes, %v; want the connection closed", n, err)
	}
}
