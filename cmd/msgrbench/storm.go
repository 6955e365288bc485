package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/msgrhq/msgr/protocol"
)

// syncer is a storm device: it processes pushed and requested sync pages
// and asks for the next page until it is up to date.
type syncer struct {
	user, device string
	token        string // access token from -login-addr; the password when empty
	want         int
	runStart     int64
	got          atomic.Int64
	dev          *chatDevice
	done         chan struct{}
	once         sync.Once
	connecting   time.Time // when its connection was started
	finished     time.Time
}

func (s *syncer) onPage(c *client, payload []byte) {
	if !bytes.HasPrefix(payload, []byte(`{"v":1,"type":"sync"`)) {
		return
	}
	var ev protocol.Event
	if err := json.Unmarshal(payload, &ev); err != nil {
		return
	}
	var acks []protocol.Cursor
	for _, m := range ev.Msgs {
		if _, sent, ok := parseMarker(m.Body); ok && sent >= s.runStart {
			s.got.Add(1)
		}
		if n := len(acks); n > 0 && acks[n-1].Conv == m.Conv && acks[n-1].Seq+1 == m.Seq {
			acks[n-1].Seq = m.Seq
			continue
		}
		acks = append(acks, protocol.Cursor{Conv: m.Conv, From: m.Seq - 1, Seq: m.Seq})
	}
	if !ev.More {
		if len(acks) > 0 {
			req, _ := json.Marshal(protocol.Request{V: protocol.Version, Ack: acks})
			c.Publish(protocol.CommandTopic(s.user, protocol.OpAck), 1, 65001, req)
		}
		if int(s.got.Load()) >= s.want {
			s.once.Do(func() { s.finished = time.Now(); close(s.done) })
		}
		return
	}
	// Acknowledge this page and ask for the next one in one request.
	req, _ := json.Marshal(protocol.Request{V: protocol.Version, Ack: acks, Limit: protocol.MaxSyncLimit})
	c.Publish(protocol.CommandTopic(s.user, protocol.OpSync), 1, 65002, req)
}

// runStorm: Devices receivers (PREFIXbN, device "storm") are brought up to
// date and disconnected; a sender (PREFIXa0) then sends each of them Missed
// messages in their direct conversation; then all devices reconnect at
// once and sync. Reported: time from the first reconnect until every
// device holds all its missed messages, and its parts.
func runStorm(ctx context.Context, c config, log io.Writer) (*report, error) {
	runStart := time.Now().UnixNano()
	mkOpts := func(s *syncer) deviceOptions {
		if s.token != "" {
			return deviceOptions{user: s.user, device: s.device, password: s.token}
		}
		return deviceOptions{user: s.user, device: s.device, password: c.Password}
	}
	syncers := make([]*syncer, c.Devices)
	for i := range syncers {
		// want 0: the preparing connection is done at its first page without "more".
		syncers[i] = &syncer{user: fmt.Sprintf("%sb%d", c.Prefix, i), device: "storm", runStart: runStart, done: make(chan struct{})}
	}
	// Phase 1: every device logs in (with -login-addr: a real app keeps
	// its access token and reconnects with it, so the storm does not
	// verify 1,000 passwords), connects once, so it exists, and catches
	// up with whatever history earlier runs left.
	t := time.Now()
	if c.LoginAddr != "" {
		if err := stormLogin(ctx, c, syncers); err != nil {
			return nil, fmt.Errorf("logging devices in: %w", err)
		}
	}
	if err := stormConnect(ctx, c, syncers, mkOpts, true); err != nil {
		return nil, fmt.Errorf("preparing devices: %w", err)
	}
	for _, s := range syncers {
		s.dev.c.Close()
	}
	prepSecs := time.Since(t).Seconds()
	fmt.Fprintf(log, "msgrbench: %d devices prepared in %.1f s; sending %d messages to each\n", c.Devices, prepSecs, c.Missed)

	// Phase 2: the sender fills every conversation while the devices are away.
	t = time.Now()
	sender, err := connectDevice(ctx, c, deviceOptions{user: c.Prefix + "a0", device: "storm", password: c.Password}, 0)
	if err != nil {
		return nil, err
	}
	var acked atomic.Int64
	fl := &inflight{base: time.Now()}
	stats := newStats([]stepPlan{{}})
	sender.c.opts.OnPuback = func(id uint16) { fl.done(id, stats, time.Now()); acked.Add(1) }
	total := c.Devices * c.Missed
	sent := 0
	for m := range c.Missed {
		for i, s := range syncers {
			for {
				if id, ok := fl.take(0, time.Now()); ok {
					b, _ := json.Marshal(protocol.Request{V: protocol.Version, To: s.user, CMID: fmt.Sprintf("%d-%d-%d", runStart, m, i),
						Body: &protocol.Body{Type: protocol.BodyText, Text: fmt.Sprintf("mb:0:%d", time.Now().UnixNano())}})
					sender.c.Publish(protocol.CommandTopic(sender.user, protocol.OpSend), 1, id, b)
					sent++
					break
				}
				_ = sender.c.Flush()
				time.Sleep(time.Millisecond)
			}
			if sent%256 == 0 {
				_ = sender.c.Flush()
			}
		}
	}
	_ = sender.c.Flush()
	for acked.Load() < int64(total) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		time.Sleep(20 * time.Millisecond)
	}
	sender.c.Close()
	fillSecs := time.Since(t).Seconds()
	fmt.Fprintf(log, "msgrbench: %d messages stored in %.1f s (%.0f/s); reconnect storm\n", total, fillSecs, float64(total)/fillSecs)

	// Phase 3: the storm.
	for _, s := range syncers {
		s.got.Store(0)
		s.want = c.Missed
		s.done = make(chan struct{})
		s.once = sync.Once{}
	}
	mon := &monitor{brokerPID: c.BrokerPID, dbPID: c.DBPID}
	b0, db0 := mon.broker(), mon.db()
	start := time.Now()
	if err := stormConnect(ctx, c, syncers, mkOpts, false); err != nil {
		return nil, err
	}
	connected := time.Since(start)
	timeout := time.After(c.MaxTime)
	for _, s := range syncers {
		select {
		case <-s.done:
		case <-timeout:
		case <-ctx.Done():
		}
	}
	elapsed := time.Since(start)
	b1, db1 := mon.broker(), mon.db()
	defer func() {
		for _, s := range syncers {
			s.dev.c.Close()
		}
	}()
	var syncTimes []float64
	complete, msgs := 0, int64(0)
	for _, s := range syncers {
		msgs += s.got.Load()
		if !s.finished.IsZero() {
			complete++
			syncTimes = append(syncTimes, s.finished.Sub(s.connecting).Seconds()*1000)
		}
	}
	sort.Float64s(syncTimes)
	pct := func(q float64) float64 {
		if len(syncTimes) == 0 {
			return 0
		}
		return round(syncTimes[int(q*float64(len(syncTimes)-1))], 1)
	}
	auth := "password"
	if c.LoginAddr != "" {
		auth = "token"
	}
	rep := &report{Params: map[string]any{"devices": c.Devices, "missed": c.Missed, "db": c.DBAddr, "auth": auth}}
	rep.Values = map[string]any{
		"prepare_s":                       round(prepSecs, 2),
		"fill_s":                          round(fillSecs, 2),
		"fill_msgs_per_s":                 round(float64(total)/fillSecs, 0),
		"storm_all_connected_s":           round(connected.Seconds(), 2),
		"storm_all_synced_s":              round(elapsed.Seconds(), 2),
		"devices_complete":                complete,
		"messages_synced":                 msgs,
		"messages_expected":               total,
		"synced_msgs_per_s":               round(float64(msgs)/elapsed.Seconds(), 0),
		"device_connect_to_synced_p50_ms": pct(0.5),
		"device_connect_to_synced_p99_ms": pct(0.99),
		"broker_cpu_s":                    round(b1.CPUSeconds-b0.CPUSeconds, 2),
		"broker_rss_mib":                  round(float64(b1.RSSBytes)/(1<<20), 1),
		"db_cpu_s":                        round(db1.CPUSeconds-db0.CPUSeconds, 2),
	}
	return rep, nil
}

// stormConnect connects every syncer's device, in parallel bounded by
// Parallel, and subscribes; each device then syncs on its own. With wait
// it also waits until every device has caught up.
func stormConnect(ctx context.Context, c config, syncers []*syncer, mkOpts func(*syncer) deviceOptions, wait bool) error {
	sem := make(chan struct{}, c.Parallel)
	errs := make(chan error, len(syncers))
	var wg sync.WaitGroup
	for i, s := range syncers {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			o := mkOpts(s)
			o.onOther = s.onPage
			s.connecting = time.Now()
			dev, err := connectDevice(ctx, c, o, i)
			if err != nil {
				errs <- err
				return
			}
			s.dev = dev
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	if wait {
		for _, s := range syncers {
			// Catching up from history: done when a page without "more" came.
			select {
			case <-s.done:
			case <-time.After(time.Minute):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// stormLogin gets every syncer an access token from msgrd's POST
// /v1/login, Parallel at a time.
func stormLogin(ctx context.Context, c config, syncers []*syncer) error {
	hc := &http.Client{Timeout: time.Minute}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, c.Parallel))
	for _, s := range syncers {
		g.Go(func() error {
			body, _ := json.Marshal(map[string]string{"user": s.user, "password": c.Password, "device": s.device})
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+c.LoginAddr+"/v1/login", bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var out struct {
				AccessToken string `json:"access_token"`
			}
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("login %s: HTTP %d %s", s.user, resp.StatusCode, bytes.TrimSpace(b))
			}
			if err := json.Unmarshal(b, &out); err != nil || out.AccessToken == "" {
				return fmt.Errorf("login %s: no access token in %q", s.user, b)
			}
			s.token = out.AccessToken
			return nil
		})
	}
	return g.Wait()
}
