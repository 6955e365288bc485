package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram is a lock-free log-linear latency histogram in the spirit of
// HdrHistogram: values below 256 ns are exact, larger ones keep 7
// significant bits (relative error below 0.8%). Recording is one atomic
// add, so many reader goroutines can share one.
type histogram struct {
	counts [256 + 56*128]atomic.Uint64
	max    atomic.Int64
	total  atomic.Uint64
}

func bucketOf(v uint64) int {
	if v < 256 {
		return int(v)
	}
	shift := bits.Len64(v) - 8 // v>>shift is in [128, 256)
	return 256 + (shift-1)*128 + int(v>>shift) - 128
}

// bucketValue is the highest value of bucket i (reported percentiles err
// on the side of slower).
func bucketValue(i int) uint64 {
	if i < 256 {
		return uint64(i)
	}
	shift := (i-256)/128 + 1
	low := uint64((i-256)%128+128) << shift
	return low + (1 << shift) - 1
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))].Add(1)
	h.total.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// quantile returns the value at quantile q (0..1).
func (h *histogram) quantile(q float64) time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			v := time.Duration(bucketValue(i))
			if m := time.Duration(h.max.Load()); v > m {
				v = m
			}
			return v
		}
	}
	return time.Duration(h.max.Load())
}

// latency is a histogram's summary in milliseconds.
type latency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (h *histogram) summary() latency {
	return latency{
		Count: h.total.Load(),
		P50:   ms(h.quantile(0.50)),
		P99:   ms(h.quantile(0.99)),
		P999:  ms(h.quantile(0.999)),
		Max:   ms(time.Duration(h.max.Load())),
	}
}
