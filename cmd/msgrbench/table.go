package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// tableCommand prints JSON reports of step scenarios as Markdown tables:
// a summary (one line per report) and every step.
func tableCommand(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: msgrbench table REPORT.json...")
	}
	var reps []report
	for _, f := range args {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var r report
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		reps = append(reps, r)
	}
	fmt.Fprintln(stdout, "| broker | scenario | highest rate with ≤0.1% loss and e2e p99 < 100 ms (msgs/s) | broker CPU µs per delivery at that rate | client CPU % at that rate |")
	fmt.Fprintln(stdout, "|---|---|---:|---:|---:|")
	for _, r := range reps {
		var at stepResult
		for _, s := range r.Steps {
			if !s.Warmup && s.Rate == r.MaxOK {
				at = s
			}
		}
		fmt.Fprintf(stdout, "| %s | %s | %.0f | %.1f | %.1f |\n", r.Label, scenarioName(r), r.MaxOK, at.BrokerCPUPerMsg, at.ClientCPUPct)
	}
	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout, "| broker | scenario | rate/s | delivered/s | loss % | e2e p50 ms | e2e p99 ms | e2e p99.9 ms | e2e max ms | PUBACK p50 ms | PUBACK p99 ms | broker CPU % | broker CPU µs/delivery | broker RSS MiB | DB CPU s | client CPU % |")
	fmt.Fprintln(stdout, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range reps {
		for _, s := range r.Steps {
			if s.Warmup {
				continue
			}
			fmt.Fprintf(stdout, "| %s | %s | %.0f | %.0f | %.3f | %.2f | %.2f | %.2f | %.1f | %.2f | %.2f | %.1f | %.1f | %.1f | %.2f | %.1f |\n",
				r.Label, scenarioName(r), s.Rate, s.DeliveredPerSec, s.LossPct, s.E2E.P50, s.E2E.P99, s.E2E.P999, s.E2E.Max,
				s.Puback.P50, s.Puback.P99, s.BrokerCPUPct, s.BrokerCPUPerMsg, s.BrokerRSSMiB, s.DBCPUSeconds, s.ClientCPUPct)
		}
	}
	return nil
}

func scenarioName(r report) string {
	switch r.Scenario {
	case "pairs":
		return fmt.Sprintf("pairs QoS %v ×%v", r.Params["qos"], r.Params["pairs"])
	case "chat":
		return fmt.Sprintf("chat 1:1 ×%v", r.Params["pairs"])
	case "group":
		return fmt.Sprintf("group %v×%v members", r.Params["groups"], r.Params["members"])
	}
	return r.Scenario
}
