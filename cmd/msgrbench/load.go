package main

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// stepPlan is one fixed-rate period of an open-loop run.
type stepPlan struct {
	Rate   float64 // messages per second, over all sources
	Dur    time.Duration
	Warmup bool
}

// stepStats collects what happened to the messages published in one step.
// Messages carry their step, so late deliveries still count for the step
// that sent them.
type stepStats struct {
	plan      stepPlan
	sent      atomic.Uint64
	skipped   atomic.Uint64 // not sent: the source's window of unacknowledged publishes was full
	delivered atomic.Uint64
	acked     atomic.Uint64
	maxLag    atomic.Int64 // worst delay between a message's due time and its write
	e2e       histogram
	ack       histogram

	start, end         time.Time
	broker0, broker1   procSample
	db0, db1           procSample
	self0, self1       procSample
	brokerRSSPeakBytes int64
}

func (s *stepStats) lag(d time.Duration) {
	for {
		m := s.maxLag.Load()
		if int64(d) <= m || s.maxLag.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// source publishes messages for the open-loop scheduler. send queues one
// message (without flushing) and reports false if it could not (its window
// of unacknowledged packet ids is full); flush writes what was queued.
type source interface {
	send(step int, st *stepStats, seq uint64) bool
	flush()
}

// monitor samples the broker, database and load-generator processes.
type monitor struct {
	brokerPID int
	dbPID     int // database server (postmaster): it and its children count as the database
}

func (m *monitor) broker() procSample {
	if m.brokerPID == 0 {
		return procSample{}
	}
	s, _ := readProc(m.brokerPID)
	return s
}

func (m *monitor) db() procSample {
	if m.dbPID == 0 {
		return procSample{}
	}
	return readProcs(append(childrenOf(m.dbPID), m.dbPID))
}

func (m *monitor) self() procSample {
	s, _ := readProc(os.Getpid())
	return s
}

// runSteps drives sources at each step's rate, one step after another, and
// returns when the last step has ended (deliveries may still be arriving).
// Every source gets an equal share of the rate; workers goroutines share
// the sources and wake at most every millisecond, writing all messages due
// by then together, so the schedule does not depend on responses
// (open loop) and the generator's own cost stays low.
func runSteps(ctx context.Context, plans []stepPlan, stats []*stepStats, sources []source, workers int, mon *monitor) {
	if workers > len(sources) {
		workers = len(sources)
	}
	t0 := time.Now().Add(20 * time.Millisecond)
	starts := make([]time.Time, len(plans)+1)
	starts[0] = t0
	for i, p := range plans {
		starts[i+1] = starts[i].Add(p.Dur)
	}
	var wg sync.WaitGroup
	var seqs atomic.Uint64
	for w := range workers {
		var own []source
		for i := w; i < len(sources); i += workers {
			own = append(own, sources[i])
		}
		share := float64(len(own)) / float64(len(sources))
		wg.Add(1)
		go func() {
			defer wg.Done()
			dirty := make([]bool, len(own))
			next := 0 // round-robin position over own, carried across steps
			for k, p := range plans {
				st := stats[k]
				rate := p.Rate * share
				if rate <= 0 {
					continue
				}
				start, end := starts[k], starts[k+1]
				interval := time.Duration(float64(time.Second) / rate)
				n := 0
				for {
					now := time.Now()
					if !now.Before(end) || ctx.Err() != nil {
						break
					}
					due := int(now.Sub(start).Seconds() * rate)
					if due > n {
						st.lag(now.Sub(start.Add(time.Duration(n) * interval)))
					}
					for ; n < due; n++ {
						i := next % len(own)
						next++
						if own[i].send(k, st, seqs.Add(1)) {
							st.sent.Add(1)
							dirty[i] = true
						} else {
							st.skipped.Add(1)
						}
					}
					for i, d := range dirty {
						if d {
							own[i].flush()
							dirty[i] = false
						}
					}
					wait := time.Until(start.Add(time.Duration(n+1) * interval))
					if wait < time.Millisecond {
						wait = time.Millisecond
					}
					if r := time.Until(end); r < wait {
						wait = r
					}
					if wait > 0 {
						time.Sleep(wait)
					}
				}
			}
		}()
	}
	// Sample the processes at every step boundary.
	for k := range plans {
		st := stats[k]
		time.Sleep(time.Until(starts[k]))
		st.start = time.Now()
		st.broker0, st.db0, st.self0 = mon.broker(), mon.db(), mon.self()
		if k > 0 {
			prev := stats[k-1]
			prev.end, prev.broker1, prev.db1, prev.self1 = st.start, st.broker0, st.db0, st.self0
		}
		peakUntil(starts[k+1], st, mon)
	}
	last := stats[len(plans)-1]
	last.end = time.Now()
	last.broker1, last.db1, last.self1 = mon.broker(), mon.db(), mon.self()
	wg.Wait()
}

// peakUntil samples the broker's RSS every half second until t and keeps
// the highest value.
func peakUntil(t time.Time, st *stepStats, mon *monitor) {
	for {
		if r := mon.broker().RSSBytes; r > st.brokerRSSPeakBytes {
			st.brokerRSSPeakBytes = r
		}
		d := time.Until(t)
		if d <= 0 {
			return
		}
		time.Sleep(min(d, 500*time.Millisecond))
	}
}

// drain waits until every step has its expected deliveries (sent times
// fanout) and acknowledgements, or until timeout.
func drain(stats []*stepStats, fanout int, wantAcks bool, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		done := true
		for _, st := range stats {
			sent := st.sent.Load()
			if st.delivered.Load() < sent*uint64(fanout) || (wantAcks && st.acked.Load() < sent) {
				done = false
				break
			}
		}
		if done {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stepResult is one step of the machine-readable report.
type stepResult struct {
	Rate             float64 `json:"rate"`
	Warmup           bool    `json:"warmup,omitempty"`
	Seconds          float64 `json:"seconds"`
	Sent             uint64  `json:"sent"`
	Skipped          uint64  `json:"skipped"`
	Expected         uint64  `json:"expected_deliveries"`
	Delivered        uint64  `json:"delivered"`
	LossPct          float64 `json:"loss_pct"`
	DeliveredPerSec  float64 `json:"delivered_per_s"`
	E2E              latency `json:"e2e"`
	Puback           latency `json:"puback"`
	BrokerCPUSeconds float64 `json:"broker_cpu_s"`
	BrokerCPUPct     float64 `json:"broker_cpu_pct"`
	BrokerCPUPerMsg  float64 `json:"broker_cpu_us_per_delivery"`
	BrokerRSSMiB     float64 `json:"broker_rss_peak_mib"`
	DBCPUSeconds     float64 `json:"db_cpu_s,omitempty"`
	ClientCPUPct     float64 `json:"client_cpu_pct"`
	MaxSendLagMs     float64 `json:"max_send_lag_ms"`
}

func (s *stepStats) result(fanout int) stepResult {
	secs := s.end.Sub(s.start).Seconds()
	sent, del := s.sent.Load(), s.delivered.Load()
	exp := (sent + s.skipped.Load()) * uint64(fanout)
	r := stepResult{
		Rate:             s.plan.Rate,
		Warmup:           s.plan.Warmup,
		Seconds:          round(secs, 2),
		Sent:             sent,
		Skipped:          s.skipped.Load(),
		Expected:         exp,
		Delivered:        del,
		E2E:              s.e2e.summary(),
		Puback:           s.ack.summary(),
		BrokerCPUSeconds: round(s.broker1.CPUSeconds-s.broker0.CPUSeconds, 2),
		BrokerRSSMiB:     round(float64(s.brokerRSSPeakBytes)/(1<<20), 1),
		DBCPUSeconds:     round(s.db1.CPUSeconds-s.db0.CPUSeconds, 2),
		MaxSendLagMs:     ms(time.Duration(s.maxLag.Load())),
	}
	if exp > 0 {
		r.LossPct = round(100*float64(exp-min(del, exp))/float64(exp), 3)
	}
	if secs > 0 {
		r.DeliveredPerSec = round(float64(del)/secs, 0)
		r.BrokerCPUPct = round(100*r.BrokerCPUSeconds/secs, 1)
		r.ClientCPUPct = round(100*(s.self1.CPUSeconds-s.self0.CPUSeconds)/secs, 1)
	}
	if del > 0 {
		r.BrokerCPUPerMsg = round(1e6*(s.broker1.CPUSeconds-s.broker0.CPUSeconds)/float64(del), 1)
	}
	return r
}

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	if v < 0 {
		return -float64(int64(-v*p+0.5)) / p
	}
	return float64(int64(v*p+0.5)) / p
}
