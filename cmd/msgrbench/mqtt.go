package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// A lean MQTT 3.1.1 client: just what the scenarios need, with coalesced
// writes (several packets per system call when they are ready together) so
// that the load generator costs far less CPU than the broker it measures.

// MQTT 3.1.1 packet types (high nibble of the fixed header).
const (
	pkConnect    = 1
	pkConnack    = 2
	pkPublish    = 3
	pkPuback     = 4
	pkSubscribe  = 8
	pkSuback     = 9
	pkPingreq    = 12
	pkPingresp   = 13
	pkDisconnect = 14
)

var errConnRefused = errors.New("connection refused by broker")

// dialOptions describe one client connection.
type dialOptions struct {
	Addr      string
	LocalIP   net.IP // source address (127.0.0.x) to spread ephemeral ports
	ClientID  string
	Username  string
	Password  string
	KeepAlive time.Duration
	Clean     bool
	ReadBuf   int // bufio reader size; small for idle connections
	Timeout   time.Duration

	// OnPublish is called on the reader goroutine for every PUBLISH;
	// QoS 1 publishes are acknowledged after it returns.
	OnPublish func(topic string, payload []byte)
	// OnPuback is called on the reader goroutine for every PUBACK.
	OnPuback func(id uint16)
	// OnSuback is called for every SUBACK with its return codes.
	OnSuback func(id uint16, codes []byte)
}

// client is one MQTT connection.
type client struct {
	opts dialOptions
	conn net.Conn
	r    *bufio.Reader

	mu  sync.Mutex // guards w
	w   *bufio.Writer
	buf []byte // scratch for encoding, guarded by mu

	done chan struct{} // closed when the reader stops
	err  error         // why the reader stopped, set before done closes
}

// dial connects, sends CONNECT and waits for a successful CONNACK, then
// starts the reader goroutine.
func dial(ctx context.Context, o dialOptions) (*client, error) {
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	if o.ReadBuf == 0 {
		o.ReadBuf = 16 << 10
	}
	d := net.Dialer{Timeout: o.Timeout}
	if o.LocalIP != nil {
		d.LocalAddr = &net.TCPAddr{IP: o.LocalIP}
	}
	conn, err := d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return nil, err
	}
	c := &client{opts: o, conn: conn, r: bufio.NewReaderSize(conn, o.ReadBuf), w: bufio.NewWriterSize(conn, 4<<10), done: make(chan struct{})}
	_ = conn.SetDeadline(time.Now().Add(o.Timeout))
	c.mu.Lock()
	c.writeConnect()
	err = c.w.Flush()
	c.mu.Unlock()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("send CONNECT: %w", err)
	}
	typ, body, err := c.readPacket()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("read CONNACK: %w", err)
	}
	if typ>>4 != pkConnack || len(body) != 2 {
		conn.Close()
		return nil, fmt.Errorf("expected CONNACK, got packet type %d", typ>>4)
	}
	if body[1] != 0 {
		conn.Close()
		return nil, fmt.Errorf("%w: CONNACK code %d", errConnRefused, body[1])
	}
	_ = conn.SetDeadline(time.Time{})
	go c.readLoop()
	return c, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendRemLen(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

// writeFrame writes header byte h and body to the buffered writer.
func (c *client) writeFrame(h byte, body []byte) {
	var hdr [5]byte
	b := appendRemLen(append(hdr[:0], h), len(body))
	_, _ = c.w.Write(b)
	_, _ = c.w.Write(body)
}

func (c *client) writeConnect() {
	o := c.opts
	var flags byte
	if o.Clean {
		flags |= 0x02
	}
	if o.Username != "" {
		flags |= 0x80
	}
	if o.Password != "" {
		flags |= 0x40
	}
	b := appendString(c.buf[:0], "MQTT")
	b = append(b, 4, flags)
	b = binary.BigEndian.AppendUint16(b, uint16(o.KeepAlive/time.Second))
	b = appendString(b, o.ClientID)
	if o.Username != "" {
		b = appendString(b, o.Username)
	}
	if o.Password != "" {
		b = appendString(b, o.Password)
	}
	c.buf = b
	c.writeFrame(pkConnect<<4, b)
}

// Publish queues a PUBLISH; call Flush (or let a later write flush) to send it.
func (c *client) Publish(topic string, qos byte, id uint16, payload []byte) {
	c.mu.Lock()
	b := appendString(c.buf[:0], topic)
	if qos > 0 {
		b = binary.BigEndian.AppendUint16(b, id)
	}
	c.buf = b
	var hdr [5]byte
	h := appendRemLen(append(hdr[:0], pkPublish<<4|qos<<1), len(b)+len(payload))
	_, _ = c.w.Write(h)
	_, _ = c.w.Write(b)
	_, _ = c.w.Write(payload)
	c.mu.Unlock()
}

// Subscribe sends a SUBSCRIBE for filters at qos; the SUBACK arrives at OnSuback.
func (c *client) Subscribe(id uint16, qos byte, filters ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := binary.BigEndian.AppendUint16(c.buf[:0], id)
	for _, f := range filters {
		b = appendString(b, f)
		b = append(b, qos)
	}
	c.buf = b
	c.writeFrame(pkSubscribe<<4|0x02, b)
	return c.w.Flush()
}

// Ping sends a PINGREQ.
func (c *client) Ping() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writeFrame(pkPingreq<<4, nil)
	return c.w.Flush()
}

// Flush sends whatever is buffered.
func (c *client) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.Flush()
}

// Close sends DISCONNECT and closes the socket.
func (c *client) Close() {
	c.mu.Lock()
	c.writeFrame(pkDisconnect<<4, nil)
	_ = c.w.Flush()
	c.mu.Unlock()
	c.conn.Close()
	<-c.done
}

// Kill closes the socket without DISCONNECT.
func (c *client) Kill() {
	c.conn.Close()
	<-c.done
}

// Done is closed when the connection has ended.
func (c *client) Done() <-chan struct{} { return c.done }

// readPacket reads one packet; the body is valid until the next read.
func (c *client) readPacket() (byte, []byte, error) {
	h, err := c.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		d, err := c.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(d&0x7f) * mult
		if d&0x80 == 0 {
			break
		}
		if i == 3 {
			return 0, nil, errors.New("malformed remaining length")
		}
		mult *= 128
	}
	var body []byte
	if n <= c.r.Size() {
		// Peek avoids a copy when the packet fits the buffer.
		body, err = c.r.Peek(n)
		if err == nil {
			_, _ = c.r.Discard(n)
		}
	} else {
		body = make([]byte, n)
		_, err = io.ReadFull(c.r, body)
	}
	if err != nil {
		return 0, nil, err
	}
	return h, body, nil
}

func (c *client) readLoop() {
	defer close(c.done)
	for {
		h, body, err := c.readPacket()
		if err != nil {
			c.err = err
			c.conn.Close()
			return
		}
		switch h >> 4 {
		case pkPublish:
			qos := (h >> 1) & 3
			if len(body) < 2 {
				c.err = errors.New("short PUBLISH")
				c.conn.Close()
				return
			}
			tl := int(binary.BigEndian.Uint16(body))
			if len(body) < 2+tl {
				c.err = errors.New("short PUBLISH topic")
				c.conn.Close()
				return
			}
			topic := string(body[2 : 2+tl])
			rest := body[2+tl:]
			var id uint16
			if qos > 0 {
				id = binary.BigEndian.Uint16(rest)
				rest = rest[2:]
			}
			if c.opts.OnPublish != nil {
				c.opts.OnPublish(topic, rest)
			}
			if qos > 0 {
				c.mu.Lock()
				var ack [4]byte
				ack[0], ack[1] = pkPuback<<4, 2
				binary.BigEndian.PutUint16(ack[2:], id)
				_, _ = c.w.Write(ack[:])
				// Coalesce acknowledgements of packets that arrived together.
				if c.r.Buffered() == 0 {
					_ = c.w.Flush()
				}
				c.mu.Unlock()
			}
		case pkPuback:
			if len(body) >= 2 && c.opts.OnPuback != nil {
				c.opts.OnPuback(binary.BigEndian.Uint16(body))
			}
		case pkSuback:
			if len(body) >= 2 && c.opts.OnSuback != nil {
				c.opts.OnSuback(binary.BigEndian.Uint16(body), append([]byte(nil), body[2:]...))
			}
		}
		if c.r.Buffered() == 0 {
			c.mu.Lock()
			if c.w.Buffered() > 0 {
				_ = c.w.Flush()
			}
			c.mu.Unlock()
		}
	}
}
