package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// raiseFileLimit lifts the open-file limit to at least n (root may raise the
// hard limit too).
func raiseFileLimit(n uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur >= n {
		return nil
	}
	want := lim
	want.Cur = n
	if want.Max < n {
		want.Max = n
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return fmt.Errorf("raise open-file limit to %d (now %d/%d): %w", n, lim.Cur, lim.Max, err)
	}
	return nil
}

// defaultSrcIPs spreads connections so that no source address needs more
// than 25,000 of the ~28,000 ephemeral ports.
func defaultSrcIPs(c config, conns int) int {
	if c.SrcIPs > 0 {
		return c.SrcIPs
	}
	return conns/25_000 + 1
}

// runIdle opens Conns anonymous connections with keepalive, holds them, and
// reports the broker's RSS growth per connection.
func runIdle(ctx context.Context, c config, log io.Writer) (*report, error) {
	if err := raiseFileLimit(uint64(c.Conns) + 256); err != nil {
		return nil, err
	}
	mon := &monitor{brokerPID: c.BrokerPID}
	nIPs := defaultSrcIPs(c, c.Conns)
	before := mon.broker()
	clients := make([]*client, c.Conns)
	var next atomic.Int64
	var firstErr error
	var errMu sync.Mutex
	start := time.Now()
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= c.Conns || ctx.Err() != nil {
					return
				}
				cl, err := dial(ctx, dialOptions{
					Addr: c.Addr, LocalIP: srcIP(i, nIPs), ClientID: fmt.Sprintf("msgrbench-idle-%d", i),
					Clean: true, KeepAlive: c.KeepAlive, ReadBuf: 512,
				})
				if err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("connection %d: %w", i, err)
					}
					errMu.Unlock()
					return
				}
				clients[i] = cl
			}
		}()
	}
	wg.Wait()
	connectSecs := time.Since(start).Seconds()
	var open []*client
	for _, cl := range clients {
		if cl != nil {
			open = append(open, cl)
		}
	}
	defer func() {
		for _, cl := range open {
			cl.Kill()
		}
	}()
	if firstErr != nil {
		return nil, fmt.Errorf("%d of %d connected: %w", len(open), c.Conns, firstErr)
	}
	fmt.Fprintf(log, "msgrbench: %d idle connections open in %.1f s, holding %v\n", len(open), connectSecs, c.Hold)
	stop := keepalive(ctx, open, c.KeepAlive)
	defer stop()
	peak := int64(0)
	deadline := time.Now().Add(c.Hold)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if r := mon.broker().RSSBytes; r > peak {
			peak = r
		}
		time.Sleep(500 * time.Millisecond)
	}
	after := mon.broker()
	held := 0
	for _, cl := range open {
		select {
		case <-cl.Done():
		default:
			held++
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	perConn := float64(after.RSSBytes-before.RSSBytes) / float64(len(open))
	rep := &report{Params: map[string]any{"conns": c.Conns, "keepalive_s": c.KeepAlive.Seconds(), "hold_s": c.Hold.Seconds(), "source_ips": nIPs}}
	rep.Values = map[string]any{
		"connected":                len(open),
		"held_open_at_end":         held,
		"connect_seconds":          round(connectSecs, 2),
		"connects_per_s":           round(float64(len(open))/connectSecs, 0),
		"broker_rss_before_mib":    round(float64(before.RSSBytes)/(1<<20), 1),
		"broker_rss_after_mib":     round(float64(after.RSSBytes)/(1<<20), 1),
		"broker_rss_peak_mib":      round(float64(peak)/(1<<20), 1),
		"broker_rss_per_conn_kib":  round(perConn/1024, 2),
		"broker_cpu_s_during_test": round(after.CPUSeconds-before.CPUSeconds, 2),
		"client_heap_per_conn_kib": round(float64(ms.HeapInuse)/float64(len(open))/1024, 2),
	}
	if held < len(open) {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d connections were closed by the broker during the hold", len(open)-held))
	}
	return rep, nil
}
