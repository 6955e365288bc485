package broker_test

import (
	"fmt"
	"testing"

	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/broker/brokertest"
	"github.com/msgrhq/msgr/storage/postgres/pgtest"
)

// BenchmarkHardeningOverhead is BenchmarkEndToEnd with metrics and limits
// on and off, interleaved in one run, to measure what they cost.
//
//	off: --metrics=false and every limit 0 (the limits hook is still
//	     installed and returns at once)
//	on:  metrics, and every limit enabled at its default, except that the
//	     message and command rates (1e6/s) and the connection burst are set
//	     so high that the benchmark's own traffic is never refused: the
//	     buckets are consulted on every command, which is the cost measured.
//
// ./scripts/bench.sh ./broker -bench BenchmarkHardeningOverhead -benchtime=5s -count=3
func BenchmarkHardeningOverhead(b *testing.B) {
	off := brokertest.WithConfig(func(c *broker.Config) {
		c.Metrics = false
		c.Limits = broker.DefaultConfig().Limits
		c.Limits.MessageRate, c.Limits.CommandRate, c.Limits.ConnRate = 0, 0, 0
		c.Limits.LoginFailuresUser, c.Limits.LoginFailuresIP = 0, 0
		c.Limits.MaxConnsPerUser, c.Limits.MaxSubscriptions = 0, 0
	})
	on := brokertest.WithConfig(func(c *broker.Config) {
		c.Metrics = true
		c.Limits = broker.DefaultConfig().Limits
		c.Limits.MessageRate, c.Limits.MessageBurst = 1e6, 1e6
		c.Limits.CommandRate, c.Limits.CommandBurst = 1e6, 1e6
		c.Limits.ConnBurst = 1000
	})
	stores := []struct {
		name        string
		databaseURL func(b testing.TB) string
	}{
		{"sqlite", func(testing.TB) string { return "" }},
		{"postgres", pgtest.FreshSchema},
	}
	for _, st := range stores {
		for _, pairs := range []int{1, 10, 100} {
			for _, mode := range []struct {
				name string
				opt  brokertest.Option
			}{{"off", off}, {"on", on}} {
				b.Run(fmt.Sprintf("store=%s/pairs=%d/hardening=%s", st.name, pairs, mode.name), func(b *testing.B) {
					benchPairs(b, pairs, st.databaseURL(b), mode.opt)
				})
			}
		}
	}
}
