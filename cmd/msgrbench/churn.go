package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// runChurn: Parallel loops connect a chat device (PREFIXbN/churn, password
// checked by the broker), subscribe to its two topics, wait for the SUBACK
// and disconnect, for StepDur. Reported: completed cycles per second,
// connect (dial to CONNACK) and cycle latency, failures, broker CPU per
// cycle. Each loop has devices of its own (loop j takes j, j+P, j+2P, ...),
// so two connections of one device never overlap: the second would take
// the first's session over and leave it waiting for a SUBACK that never
// comes.
func runChurn(ctx context.Context, c config, log io.Writer) (*report, error) {
	mon := &monitor{brokerPID: c.BrokerPID, dbPID: c.DBPID}
	var connectH, cycleH histogram
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	b0, db0, self0 := mon.broker(), mon.db(), mon.self()
	start := time.Now()
	deadline := start.Add(c.StepDur)
	var wg sync.WaitGroup
	loops := min(c.Parallel, c.Devices)
	for j := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; time.Now().Before(deadline) && ctx.Err() == nil; k++ {
				own := (c.Devices - j + loops - 1) / loops // devices j, j+loops, ... below Devices
				i := j + (k%own)*loops
				t := time.Now()
				d, err := connectDevice(ctx, c, deviceOptions{user: fmt.Sprintf("%sb%d", c.Prefix, i), device: "churn", password: c.Password}, i)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				connectH.record(time.Since(t)) // CONNECT..SUBACK
				d.c.Close()
				cycleH.record(time.Since(t))
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	b1, db1, self1 := mon.broker(), mon.db(), mon.self()
	n := ok.Load()
	rep := &report{Params: map[string]any{"parallel": loops, "devices": c.Devices, "seconds": c.StepDur.Seconds(), "db": c.DBAddr}}
	rep.Values = map[string]any{
		"cycles":                  n,
		"failed":                  failed.Load(),
		"cycles_per_s":            round(float64(n)/secs, 1),
		"connect_to_suback":       connectH.summary(),
		"cycle":                   cycleH.summary(),
		"broker_cpu_pct":          round(100*(b1.CPUSeconds-b0.CPUSeconds)/secs, 1),
		"broker_cpu_ms_per_cycle": round(1000*(b1.CPUSeconds-b0.CPUSeconds)/max(float64(n), 1), 2),
		"broker_rss_mib":          round(float64(b1.RSSBytes)/(1<<20), 1),
		"db_cpu_s":                round(db1.CPUSeconds-db0.CPUSeconds, 2),
		"client_cpu_pct":          round(100*(self1.CPUSeconds-self0.CPUSeconds)/secs, 1),
	}
	if e := firstErr.Load(); e != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("first failure: %v", e))
	}
	return rep, nil
}
