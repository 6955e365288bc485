package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgrhq/msgr/protocol"
)

// Chat scenarios talk msgr's protocol (docs/PROTOCOL.md) over the raw
// client: commands are QoS 1 publishes on msgr/u/USER/cmd/OP, events
// arrive on msgr/u/USER/in and msgr/u/USER/d/DEVICE. Message bodies carry
// "mb:STEP:UNIXNANOS" so receivers can time them.

// chatDevice is a connected, subscribed chat device.
type chatDevice struct {
	user, device string
	c            *client
	replies      chan protocol.Event // replies and pushed sync pages, when wanted
}

type deviceOptions struct {
	user, device string
	password     string
	// onMessage gets every message event's raw payload (on the reader
	// goroutine); nil ignores them.
	onMessage func(payload []byte)
	// wantReplies decodes device-topic events into replies.
	wantReplies bool
	// onOther gets every other publish (on the reader goroutine).
	onOther func(c *client, payload []byte)
	fl      *inflight
	stats   []*stepStats
}

var (
	prefixMessage = []byte(`{"v":1,"type":"message"`)
	markerText    = []byte(`"text":"mb:`)
)

// connectDevice connects user/device, subscribes to its two topics at
// QoS 1 and waits for the SUBACK.
func connectDevice(ctx context.Context, c config, o deviceOptions, localIdx int) (*chatDevice, error) {
	d := &chatDevice{user: o.user, device: o.device}
	var self atomic.Pointer[client]
	if o.wantReplies {
		d.replies = make(chan protocol.Event, 64)
	}
	devTopic := protocol.DeviceTopic(o.user, o.device)
	suback := make(chan []byte, 1)
	cl, err := dial(ctx, dialOptions{
		Addr: c.Addr, LocalIP: srcIP(localIdx, defaultSrcIPs(c, c.Devices)),
		ClientID: protocol.ClientID(o.user, o.device), Username: o.user, Password: o.password,
		Clean: true, KeepAlive: c.KeepAlive,
		OnPublish: func(topic string, payload []byte) {
			if bytes.HasPrefix(payload, prefixMessage) {
				if o.onMessage != nil {
					o.onMessage(payload)
				}
				return
			}
			if o.onOther != nil {
				if cl := self.Load(); cl != nil {
					o.onOther(cl, payload)
				}
			}
			if d.replies != nil && topic == devTopic {
				var ev protocol.Event
				if json.Unmarshal(payload, &ev) == nil {
					select {
					case d.replies <- ev:
					default:
					}
				}
			}
		},
		OnPuback: func(id uint16) {
			if o.fl != nil {
				o.fl.done(id, o.stats, time.Now())
			}
		},
		OnSuback: func(_ uint16, codes []byte) { suback <- codes },
	})
	if err != nil {
		return nil, fmt.Errorf("connect %s/%s: %w", o.user, o.device, err)
	}
	d.c = cl
	self.Store(cl)
	if err := cl.Subscribe(1, 1, protocol.InboxTopic(o.user), devTopic); err != nil {
		cl.Kill()
		return nil, err
	}
	select {
	case codes := <-suback:
		if len(codes) != 2 || codes[0] != 1 || codes[1] != 1 {
			cl.Kill()
			return nil, fmt.Errorf("subscribe %s/%s refused: % x", o.user, o.device, codes)
		}
	case <-time.After(30 * time.Second):
		cl.Kill()
		return nil, fmt.Errorf("subscribe %s/%s: no SUBACK", o.user, o.device)
	case <-ctx.Done():
		cl.Kill()
		return nil, ctx.Err()
	}
	return d, nil
}

// command publishes a request at QoS 1 (packet id from the top of the
// range, away from the window used for timed sends) and waits for the
// reply of type want.
func (d *chatDevice) command(ctx context.Context, op protocol.Op, req protocol.Request, want protocol.EventType) (protocol.Event, error) {
	req.V = protocol.Version
	req.ID = "r" + strconv.FormatInt(time.Now().UnixNano(), 36)
	b, err := json.Marshal(req)
	if err != nil {
		return protocol.Event{}, err
	}
	d.c.Publish(protocol.CommandTopic(d.user, op), 1, 65000, b)
	if err := d.c.Flush(); err != nil {
		return protocol.Event{}, err
	}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev := <-d.replies:
			if ev.Req != req.ID {
				continue
			}
			if ev.Type == protocol.EvError && ev.Error != nil {
				return ev, fmt.Errorf("%s: %s: %s", op, ev.Error.Code, ev.Error.Message)
			}
			if ev.Type != want {
				return ev, fmt.Errorf("%s: reply %s, want %s", op, ev.Type, want)
			}
			return ev, nil
		case <-timeout:
			return protocol.Event{}, fmt.Errorf("%s: no reply", op)
		case <-ctx.Done():
			return protocol.Event{}, ctx.Err()
		}
	}
}

// parseMarker finds "mb:STEP:NANOS" in a message event.
func parseMarker(payload []byte) (step int, sent int64, ok bool) {
	i := bytes.Index(payload, markerText)
	if i < 0 {
		return 0, 0, false
	}
	rest := payload[i+len(markerText):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return 0, 0, false
	}
	a, b, found := bytes.Cut(rest[:end], []byte(":"))
	if !found {
		return 0, 0, false
	}
	if j := bytes.IndexByte(b, ':'); j >= 0 {
		b = b[:j]
	}
	s, err1 := strconv.Atoi(string(a))
	n, err2 := strconv.ParseInt(string(b), 10, 64)
	return s, n, err1 == nil && err2 == nil
}

// recordChat counts a receiver's message event for the step it was sent in.
// Messages from before the run (a sync of older history) are ignored.
func recordChat(payload []byte, stats []*stepStats, runStart int64) {
	step, sent, ok := parseMarker(payload)
	if !ok || sent < runStart || step < 0 || step >= len(stats) {
		return
	}
	st := stats[step]
	st.e2e.record(time.Duration(time.Now().UnixNano() - sent))
	st.delivered.Add(1)
}

// chatSource sends text messages from one device, into a direct
// conversation ("to") or a group ("conv").
type chatSource struct {
	d       *chatDevice
	topic   string
	to      string
	conv    string
	fl      *inflight
	buf     []byte
	padding string
}

func (s *chatSource) send(step int, st *stepStats, seq uint64) bool {
	now := time.Now()
	id, ok := s.fl.take(step, now)
	if !ok {
		return false
	}
	b := append(s.buf[:0], `{"v":1,`...)
	if s.conv != "" {
		b = append(b, `"conv":"`...)
		b = append(b, s.conv...)
	} else {
		b = append(b, `"to":"`...)
		b = append(b, s.to...)
	}
	b = append(b, `","cmid":"`...)
	b = strconv.AppendInt(b, now.UnixNano(), 36)
	b = append(b, '-')
	b = strconv.AppendUint(b, seq, 36)
	b = append(b, `","body":{"type":"text","text":"mb:`...)
	b = strconv.AppendInt(b, int64(step), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, now.UnixNano(), 10)
	b = append(b, s.padding...)
	b = append(b, `"}}`...)
	s.buf = b
	s.d.c.Publish(s.topic, 1, id, b)
	return true
}

func (s *chatSource) flush() { _ = s.d.c.Flush() }

func closeDevices(ds []*chatDevice) {
	var wg sync.WaitGroup
	for _, d := range ds {
		if d != nil {
			wg.Add(1)
			go func() { defer wg.Done(); d.c.Close() }()
		}
	}
	wg.Wait()
}

// connectMany connects devices in parallel (authentication is the slow part).
func connectMany(ctx context.Context, c config, opts []deviceOptions, parallel int) ([]*chatDevice, error) {
	out := make([]*chatDevice, len(opts))
	errs := make([]error, len(opts))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, o := range opts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i], errs[i] = connectDevice(ctx, c, o, i)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeDevices(out)
		return nil, err
	}
	return out, nil
}

// runChat: Pairs senders (PREFIXaN) each send to their receiver (PREFIXbN)
// in a direct conversation, QoS 1, PUBACK after the message is durably
// stored. Every device subscribes to its inbox and device topic like a real
// client; only receivers' message events count as deliveries.
func runChat(ctx context.Context, c config, log io.Writer) (*report, error) {
	plans := c.plans()
	stats := newStats(plans)
	runStart := time.Now().UnixNano()
	var opts []deviceOptions
	fls := make([]*inflight, c.Pairs)
	for i := range c.Pairs {
		fls[i] = &inflight{base: time.Now()}
		opts = append(opts,
			deviceOptions{user: fmt.Sprintf("%sa%d", c.Prefix, i), device: "bench", password: c.Password, fl: fls[i], stats: stats},
			deviceOptions{user: fmt.Sprintf("%sb%d", c.Prefix, i), device: "bench", password: c.Password,
				onMessage: func(p []byte) { recordChat(p, stats, runStart) }})
	}
	t := time.Now()
	devs, err := connectMany(ctx, c, opts, 32)
	if err != nil {
		return nil, err
	}
	defer closeDevices(devs)
	fmt.Fprintf(log, "msgrbench: %d chat devices connected in %.1f s, running %d steps\n", len(devs), time.Since(t).Seconds(), len(plans))
	sources := make([]source, c.Pairs)
	for i := range c.Pairs {
		sender := devs[2*i]
		sources[i] = &chatSource{d: sender, topic: protocol.CommandTopic(sender.user, protocol.OpSend), to: devs[2*i+1].user, fl: fls[i]}
	}
	clients := make([]*client, len(devs))
	for i, d := range devs {
		clients[i] = d.c
	}
	stop := keepalive(ctx, clients, c.KeepAlive)
	defer stop()
	runSteps(ctx, plans, stats, sources, c.Workers, &monitor{brokerPID: c.BrokerPID, dbPID: c.DBPID})
	drain(stats, 1, true, c.Drain)
	rep := &report{Params: map[string]any{"pairs": c.Pairs, "step_s": c.StepDur.Seconds(), "warmup_s": c.Warmup.Seconds(), "db": c.DBAddr}}
	rep.addSteps(stats, 1)
	return rep, nil
}

// runGroup: Groups groups of Members members; the first member of each
// (PREFIXaG) sends, the others (PREFIXb...) receive. Rates are messages
// sent per second over all groups; deliveries are counted at the
// receivers (Members-1 per message).
func runGroup(ctx context.Context, c config, log io.Writer) (*report, error) {
	if c.Members < 2 {
		return nil, errors.New("-members must be at least 2")
	}
	plans := c.plans()
	stats := newStats(plans)
	runStart := time.Now().UnixNano()
	var opts []deviceOptions
	fls := make([]*inflight, c.Groups)
	for g := range c.Groups {
		fls[g] = &inflight{base: time.Now()}
		opts = append(opts, deviceOptions{user: fmt.Sprintf("%sa%d", c.Prefix, g), device: "bench", password: c.Password, fl: fls[g], stats: stats, wantReplies: true})
		for j := range c.Members - 1 {
			opts = append(opts, deviceOptions{user: fmt.Sprintf("%sb%d", c.Prefix, g*(c.Members-1)+j), device: "bench", password: c.Password,
				onMessage: func(p []byte) { recordChat(p, stats, runStart) }})
		}
	}
	t := time.Now()
	devs, err := connectMany(ctx, c, opts, 32)
	if err != nil {
		return nil, err
	}
	defer closeDevices(devs)
	fmt.Fprintf(log, "msgrbench: %d chat devices connected in %.1f s\n", len(devs), time.Since(t).Seconds())
	sources := make([]source, c.Groups)
	for g := range c.Groups {
		base := g * c.Members
		sender := devs[base]
		var members []string
		for _, d := range devs[base+1 : base+c.Members] {
			members = append(members, d.user)
		}
		ev, err := sender.command(ctx, protocol.OpGroupCreate, protocol.Request{Title: fmt.Sprintf("bench %d", g), Members: members}, protocol.EvConversation)
		if err != nil {
			return nil, err
		}
		sources[g] = &chatSource{d: sender, topic: protocol.CommandTopic(sender.user, protocol.OpSend), conv: ev.Conv.ID, fl: fls[g]}
	}
	clients := make([]*client, len(devs))
	for i, d := range devs {
		clients[i] = d.c
	}
	stop := keepalive(ctx, clients, c.KeepAlive)
	defer stop()
	fmt.Fprintf(log, "msgrbench: %d groups of %d created, running %d steps\n", c.Groups, c.Members, len(plans))
	runSteps(ctx, plans, stats, sources, c.Workers, &monitor{brokerPID: c.BrokerPID, dbPID: c.DBPID})
	drain(stats, c.Members-1, true, c.Drain)
	rep := &report{Params: map[string]any{"groups": c.Groups, "members": c.Members, "step_s": c.StepDur.Seconds(), "warmup_s": c.Warmup.Seconds(), "db": c.DBAddr}}
	rep.addSteps(stats, c.Members-1)
	rep.Notes = append(rep.Notes, "rate is messages sent per second; delivered/s counts message events received by the other members")
	return rep, nil
}
