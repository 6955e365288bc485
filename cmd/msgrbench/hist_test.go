package main

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestBucketRoundTrip(t *testing.T) {
	for _, v := range []uint64{0, 1, 255, 256, 257, 1000, 123456, 1 << 40, 1<<63 - 1} {
		i := bucketOf(v)
		hi := bucketValue(i)
		if hi < v {
			t.Errorf("value %d: bucket %d ends at %d, below the value", v, i, hi)
		}
		if v >= 256 && float64(hi-v)/float64(v) > 0.008 {
			t.Errorf("value %d: bucket end %d is more than 0.8%% above", v, hi)
		}
		if i > 0 && bucketValue(i-1) >= v {
			t.Errorf("value %d: previous bucket already ends at %d", v, bucketValue(i-1))
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	// 1..10000 µs, shuffled.
	vals := rand.Perm(10000)
	for _, v := range vals {
		h.record(time.Duration(v+1) * time.Microsecond)
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 5000 * time.Microsecond},
		{0.99, 9900 * time.Microsecond},
		{0.999, 9990 * time.Microsecond},
		{1, 10000 * time.Microsecond},
	}
	for _, tt := range tests {
		got := h.quantile(tt.q)
		if got < tt.want || float64(got-tt.want)/float64(tt.want) > 0.008 {
			t.Errorf("quantile %v = %v, want %v (within 0.8%% above)", tt.q, got, tt.want)
		}
	}
	if s := h.summary(); s.Count != 10000 || s.Max != 10 {
		t.Errorf("summary %+v", s)
	}
	var empty histogram
	if empty.quantile(0.99) != 0 {
		t.Error("empty histogram has a quantile")
	}
}
