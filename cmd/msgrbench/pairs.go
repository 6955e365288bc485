package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// window is how many QoS 1 publishes a source may have unacknowledged; a
// full window means the broker is far behind and the message is counted as
// skipped (lost) rather than delaying the schedule.
const window = 4096

// inflight tracks a source's unacknowledged QoS 1 publishes by packet id:
// step+1 in the top 16 bits, send time (ns since base) in the rest.
type inflight struct {
	base  time.Time
	slots [window + 1]atomic.Uint64
	next  uint16
}

func (f *inflight) take(step int, now time.Time) (uint16, bool) {
	f.next = f.next%window + 1
	v := uint64(step+1)<<48 | uint64(now.Sub(f.base))&(1<<48-1)
	if !f.slots[f.next].CompareAndSwap(0, v) {
		return 0, false
	}
	return f.next, true
}

func (f *inflight) done(id uint16, stats []*stepStats, now time.Time) {
	if id == 0 || id > window {
		return
	}
	v := f.slots[id].Swap(0)
	if v == 0 {
		return
	}
	st := stats[int(v>>48)-1]
	st.ack.record(now.Sub(f.base) - time.Duration(v&(1<<48-1)))
	st.acked.Add(1)
}

// Payload layout of the pairs scenario: send time (Unix ns), step, magic.
const pairsMagic = 0x6d736772 // "msgr"

type pairSource struct {
	c       *client
	topic   string
	qos     byte
	payload []byte
	fl      *inflight
}

func (p *pairSource) send(step int, st *stepStats, seq uint64) bool {
	now := time.Now()
	var id uint16
	if p.qos > 0 {
		var ok bool
		if id, ok = p.fl.take(step, now); !ok {
			return false
		}
	}
	binary.BigEndian.PutUint64(p.payload[0:], uint64(now.UnixNano()))
	binary.BigEndian.PutUint32(p.payload[8:], uint32(step))
	binary.BigEndian.PutUint32(p.payload[12:], pairsMagic)
	p.c.Publish(p.topic, p.qos, id, p.payload)
	return true
}

func (p *pairSource) flush() { _ = p.c.Flush() }

// runPairs: Pairs publishers each publish to their own topic
// bench/pairs/N, which one subscriber subscribes to. Works against any
// MQTT 3.1.1 broker that lets anonymous clients use bench/#.
func runPairs(ctx context.Context, c config, log io.Writer) (*report, error) {
	plans := c.plans()
	stats := newStats(plans)
	qos := byte(c.QoS)
	var clients []*client
	defer func() {
		for _, cl := range clients {
			cl.Close()
		}
	}()
	sources := make([]source, c.Pairs)
	subacks := make(chan []byte, c.Pairs)
	for i := range c.Pairs {
		topic := fmt.Sprintf("bench/pairs/%d", i)
		sub, err := dial(ctx, dialOptions{
			Addr: c.Addr, ClientID: fmt.Sprintf("msgrbench-sub-%d", i), Clean: true, KeepAlive: c.KeepAlive,
			OnPublish: func(_ string, payload []byte) { recordPairs(payload, stats) },
			OnSuback:  func(_ uint16, codes []byte) { subacks <- codes },
		})
		if err != nil {
			return nil, fmt.Errorf("subscriber %d: %w", i, err)
		}
		clients = append(clients, sub)
		if err := sub.Subscribe(1, qos, topic); err != nil {
			return nil, err
		}
		select {
		case codes := <-subacks:
			if len(codes) != 1 || codes[0] > 2 {
				return nil, fmt.Errorf("subscribe %s refused: % x (does the broker allow anonymous clients on bench/#?)", topic, codes)
			}
		case <-time.After(10 * time.Second):
			return nil, fmt.Errorf("subscribe %s: no SUBACK", topic)
		}
		fl := &inflight{base: time.Now()}
		pub, err := dial(ctx, dialOptions{
			Addr: c.Addr, ClientID: fmt.Sprintf("msgrbench-pub-%d", i), Clean: true, KeepAlive: c.KeepAlive,
			OnPuback: func(id uint16) { fl.done(id, stats, time.Now()) },
		})
		if err != nil {
			return nil, fmt.Errorf("publisher %d: %w", i, err)
		}
		clients = append(clients, pub)
		sources[i] = &pairSource{c: pub, topic: topic, qos: qos, payload: make([]byte, c.Size), fl: fl}
	}
	fmt.Fprintf(log, "msgrbench: %d pairs connected, QoS %d, running %d steps\n", c.Pairs, qos, len(plans))
	stop := keepalive(ctx, clients, c.KeepAlive)
	defer stop()
	runSteps(ctx, plans, stats, sources, c.Workers, &monitor{brokerPID: c.BrokerPID, dbPID: c.DBPID})
	drain(stats, 1, qos > 0, c.Drain)
	rep := &report{Params: map[string]any{"pairs": c.Pairs, "qos": c.QoS, "payload_bytes": c.Size, "step_s": c.StepDur.Seconds(), "warmup_s": c.Warmup.Seconds()}}
	rep.addSteps(stats, 1)
	return rep, nil
}

func recordPairs(payload []byte, stats []*stepStats) {
	if len(payload) < 16 || binary.BigEndian.Uint32(payload[12:]) != pairsMagic {
		return
	}
	step := int(binary.BigEndian.Uint32(payload[8:]))
	if step >= len(stats) {
		return
	}
	sent := int64(binary.BigEndian.Uint64(payload))
	st := stats[step]
	st.e2e.record(time.Duration(time.Now().UnixNano() - sent))
	st.delivered.Add(1)
}

// keepalive pings every client at half its keepalive from one goroutine
// (one per connection would dominate the generator's cost with 50k idle
// connections). The returned function stops it.
func keepalive(ctx context.Context, clients []*client, ka time.Duration) func() {
	if ka <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(ka / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				for _, cl := range clients {
					_ = cl.Ping()
				}
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}
