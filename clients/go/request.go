package msgr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/msgrhq/msgr/protocol"
	"github.com/oklog/ulid/v2"
)

// ErrNoReply means a request attempt ended without an answer from the
// broker: the connection dropped or the attempt timed out. The request may
// or may not have been carried out.
var ErrNoReply = errors.New("msgr: no reply from the broker")

const (
	minRetryDelay = 100 * time.Millisecond
	maxRetryDelay = 2 * time.Second
)

// retryPolicy says which failed attempts a request repeats.
type retryPolicy int

const (
	// once is for requests that change state and are not idempotent: they
	// are repeated only when the broker says nothing was done.
	once retryPolicy = iota
	// idempotent requests are repeated after timeouts, disconnections and
	// retryable errors, until their context is done.
	idempotent
)

func (p retryPolicy) retry(err error) bool {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		if p == idempotent {
			return pe.Code.Retryable()
		}
		return pe.Code == protocol.CodeUnavailable
	}
	return p == idempotent && errors.Is(err, ErrNoReply)
}

// NewCMID returns a fresh client message id. Keep it with an unsent message
// and pass it in Outgoing.CMID on every retransmission, across restarts
// too, so that the broker stores the message once.
func NewCMID() string { return ulid.Make().String() }

// do sends a request and returns the broker's reply, retrying according to
// policy. A reply of type error is returned as a *protocol.Error.
func (c *Client) do(ctx context.Context, op protocol.Op, req protocol.Request, policy retryPolicy) (*protocol.Event, error) {
	if c.isClosing() {
		return nil, ErrClosed
	}
	return c.doRetry(ctx, op, req, policy)
}

// doRetry is do without the closing check, for Close's final acknowledgement.
func (c *Client) doRetry(ctx context.Context, op protocol.Op, req protocol.Request, policy retryPolicy) (*protocol.Event, error) {
	delay := minRetryDelay
	var last error
	for {
		ev, err := c.attempt(ctx, op, req)
		if err == nil {
			return ev, nil
		}
		if ctx.Err() != nil && last != nil {
			return nil, fmt.Errorf("msgr: %s: %w (last error: %w)", op, ctx.Err(), last)
		}
		if ctx.Err() != nil || !policy.retry(err) {
			return nil, fmt.Errorf("msgr: %s: %w", op, err)
		}
		last = err
		c.log.Debug("msgr: retrying request", "op", op, "err", err, "delay", delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("msgr: %s: %w (last error: %w)", op, ctx.Err(), last)
		case <-c.dead:
			t.Stop()
			return nil, fmt.Errorf("msgr: %s: %w", op, ErrClosed)
		}
		delay = min(2*delay, maxRetryDelay)
	}
}

// notify sends a request the broker answers only when it fails, once, and
// returns when the broker has acknowledged it.
func (c *Client) notify(ctx context.Context, op protocol.Op, req protocol.Request) error {
	if c.isClosing() {
		return ErrClosed
	}
	if _, err := c.publish(ctx, op, req, false); err != nil {
		return fmt.Errorf("msgr: %s: %w", op, err)
	}
	return nil
}

// attempt publishes one request and waits for its reply.
func (c *Client) attempt(ctx context.Context, op protocol.Op, req protocol.Request) (*protocol.Event, error) {
	return c.publish(ctx, op, req, true)
}

// publish publishes one request and, if wantReply, waits for its reply;
// otherwise it returns a nil event once the PUBLISH is acknowledged. The
// request id travels both in the payload and as MQTT 5 correlation data,
// with the device topic as response topic.
func (c *Client) publish(ctx context.Context, op protocol.Op, req protocol.Request, wantReply bool) (*protocol.Event, error) {
	l, err := c.awaitLink(ctx)
	if err != nil {
		return nil, err
	}
	id := ulid.Make().String()
	req.V = protocol.Version
	req.ID = id
	payload, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	reply := c.pending.add(id)
	defer c.pending.remove(id)

	// paho caps its wait for the PUBACK at PacketTimeout whatever ctx says,
	// so an attempt never outlives RequestTimeout; callers retry.
	actx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	// Publish runs aside so that a lost connection ends the attempt at once
	// (paho would keep waiting for the PUBACK); cancel then stops it.
	type result struct {
		resp *paho.PublishResponse
		err  error
	}
	published := make(chan result, 1)
	go func() {
		resp, err := l.pub.Publish(actx, &paho.Publish{
			QoS:     1,
			Topic:   protocol.CommandTopic(c.cfg.User, op),
			Payload: payload,
			Properties: &paho.PublishProperties{
				ResponseTopic:   c.device,
				CorrelationData: []byte(id),
				ContentType:     "application/json",
			},
		})
		published <- result{resp, err}
	}()

	for {
		select {
		case r := <-published:
			published = nil // the PUBACK is in; wait for the reply
			if r.err == nil {
				if !wantReply {
					return nil, nil
				}
				continue
			}
			if r.resp != nil && r.resp.ReasonCode >= 0x80 {
				return nil, c.refusal(actx, reply, r.resp)
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("%w: publish: %w", ErrNoReply, r.err)
		case ev := <-reply:
			return replyOf(ev)
		case <-l.down:
			return nil, fmt.Errorf("%w: connection lost", ErrNoReply)
		case <-c.dead:
			return nil, ErrClosed
		case <-actx.Done():
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("%w: timed out after %s", ErrNoReply, c.cfg.RequestTimeout)
		}
	}
}

// awaitLink waits until the client is connected and subscribed.
func (c *Client) awaitLink(ctx context.Context) (*link, error) {
	for {
		l, ready := c.link.current()
		if l != nil {
			return l, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.dead:
			return nil, ErrClosed
		}
	}
}

// refusal explains a PUBACK with an error reason. The broker also sends an
// error event with the precise code (the reason code is ambiguous: 0x87
// is both not_member and forbidden), so wait for it briefly.
func (c *Client) refusal(ctx context.Context, reply <-chan *protocol.Event, resp *paho.PublishResponse) error {
	t := time.NewTimer(c.refusalGrace)
	defer t.Stop()
	select {
	case ev := <-reply:
		if ev.Type == protocol.EvError {
			_, err := replyOf(ev)
			return err
		}
	case <-t.C:
	case <-ctx.Done():
	case <-c.dead:
	}
	msg := fmt.Sprintf("broker refused the request (PUBACK reason 0x%02x)", resp.ReasonCode)
	if resp.Properties != nil && resp.Properties.ReasonString != "" {
		msg += ": " + resp.Properties.ReasonString
	}
	return &protocol.Error{Code: codeOfReason(resp.ReasonCode), Message: msg}
}

// codeOfReason maps a PUBACK reason code to the error code docs/PROTOCOL.md
// pairs it with, preferring the one with the same retry advice.
func codeOfReason(reason byte) protocol.Code {
	switch reason {
	case 0x99:
		return protocol.CodeBadRequest
	case 0x83:
		return protocol.CodeNotFound
	case 0x87:
		return protocol.CodeForbidden
	case 0x95:
		return protocol.CodeTooLarge
	case 0x96:
		return protocol.CodeRateLimited
	case 0x97:
		return protocol.CodeGroupFull
	default: // 0x80 and anything unexpected
		return protocol.CodeInternal
	}
}

func replyOf(ev *protocol.Event) (*protocol.Event, error) {
	if ev.Type != protocol.EvError {
		return ev, nil
	}
	if ev.Error == nil {
		return nil, &protocol.Error{Code: protocol.CodeInternal, Message: "error event without error"}
	}
	return nil, ev.Error
}

// unexpected reports a reply of the wrong shape: a broker bug, not
// something to retry.
func unexpected(op protocol.Op, ev *protocol.Event) error {
	return fmt.Errorf("msgr: %s: unexpected reply of type %q", op, ev.Type)
}
