// Command msgrbench is msgr's load generator and reference server.
//
//	msgrbench run -scenario NAME [flags]   run a scenario against a broker on this machine
//	msgrbench mochi [-addr host:port]      bare mochi-mqtt v2.7.9 with its defaults (reference server)
//	msgrbench users [flags]                create chat users for the chat scenarios
//	msgrbench table REPORT.json...         Markdown tables of step reports
//
// Scenarios: idle (RSS per idle connection), pairs (raw MQTT publisher →
// subscriber pairs at QoS 0 or 1, any broker), chat (msgr 1:1 chat with
// durable acknowledgements), group (msgr group fan-out), storm (devices
// that missed messages reconnect and sync), churn (connect, authenticate,
// subscribe, disconnect in a loop).
//
// Load is open loop: messages are sent at fixed rates in steps, whatever
// the broker answers. Every message carries its send time; the report
// gives end-to-end and publish→PUBACK latency, delivered/s, loss and the
// broker process's CPU time and RSS (read from /proc) per step, as a table
// and as JSON. Only loopback addresses are accepted.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "msgrbench:", err)
		os.Exit(1)
	}
}

const usage = "usage: msgrbench run|mochi|users|table [flags] (msgrbench CMD -h for flags)"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch args[0] {
	case "run":
		return runCommand(ctx, args[1:], stdout, stderr)
	case "mochi":
		return mochiCommand(ctx, args[1:], stderr)
	case "users":
		return usersCommand(ctx, args[1:], stdout, stderr)
	case "table":
		return tableCommand(args[1:], stdout)
	}
	return errors.New(usage)
}

// config holds the flags of "msgrbench run".
type config struct {
	Scenario  string
	Addr      string
	Label     string
	BrokerPID int
	DBAddr    string
	DBPID     int
	Steps     []float64
	StepDur   time.Duration
	Warmup    time.Duration
	Drain     time.Duration
	MaxTime   time.Duration
	Workers   int
	QoS       int
	Pairs     int
	Size      int
	Conns     int
	SrcIPs    int
	Hold      time.Duration
	KeepAlive time.Duration
	Prefix    string
	Password  string
	LoginAddr string // storm: msgrd's HTTP address; devices reconnect with access tokens from /v1/login
	Members   int
	Groups    int
	Missed    int
	Devices   int
	Parallel  int
	JSON      string
}

// stepsFlag parses "1000,2000,5000".
type stepsFlag struct{ v *[]float64 }

func (s stepsFlag) String() string {
	if s.v == nil {
		return ""
	}
	var parts []string
	for _, r := range *s.v {
		parts = append(parts, strconv.FormatFloat(r, 'f', -1, 64))
	}
	return strings.Join(parts, ",")
}

func (s stepsFlag) Set(v string) error {
	var out []float64
	for _, p := range strings.Split(v, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || r <= 0 {
			return fmt.Errorf("step rate %q is not a positive number", p)
		}
		out = append(out, r)
	}
	*s.v = out
	return nil
}

func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := config{Steps: []float64{1000, 2000, 5000, 10000, 15000, 20000}}
	fs := flag.NewFlagSet("msgrbench run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Scenario, "scenario", "pairs", "idle, pairs, chat, group, storm or churn")
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:1883", "broker MQTT address (loopback only)")
	fs.StringVar(&c.Label, "label", "", "name of the broker under test, for the report")
	fs.IntVar(&c.BrokerPID, "broker-pid", 0, "broker process id for CPU and RSS (default: the process listening on -addr)")
	fs.StringVar(&c.DBAddr, "db-addr", "", "address of the broker's PostgreSQL server: its postmaster and children count as the database's CPU")
	fs.Var(stepsFlag{&c.Steps}, "steps", "comma-separated message rates per second, one step each")
	fs.DurationVar(&c.StepDur, "step-dur", 30*time.Second, "duration of each step")
	fs.DurationVar(&c.Warmup, "warmup", 5*time.Second, "warm-up at the first step's rate before measuring, 0 for none")
	fs.DurationVar(&c.Drain, "drain", 5*time.Second, "how long to wait for late deliveries after the last step")
	fs.DurationVar(&c.MaxTime, "max-time", 15*time.Minute, "abort the run after this long")
	fs.IntVar(&c.Workers, "workers", max(2, runtime.GOMAXPROCS(0)), "sender goroutines")
	fs.IntVar(&c.QoS, "qos", 1, "pairs: QoS of publishes and subscriptions (0 or 1)")
	fs.IntVar(&c.Pairs, "pairs", 100, "pairs, chat: publisher/subscriber (sender/receiver) pairs")
	fs.IntVar(&c.Size, "size", 64, "pairs: payload bytes (at least 16)")
	fs.IntVar(&c.Conns, "conns", 1000, "idle: connections to open")
	fs.IntVar(&c.SrcIPs, "src-ips", 0, "idle, churn: spread connections over 127.0.0.1..N source addresses (default: one per 25,000 connections)")
	fs.DurationVar(&c.Hold, "hold", 10*time.Second, "idle: how long to hold the connections open")
	fs.DurationVar(&c.KeepAlive, "keepalive", 60*time.Second, "keepalive of every connection")
	fs.StringVar(&c.Prefix, "prefix", "bench", "chat scenarios: user name prefix (users made by 'msgrbench users')")
	fs.StringVar(&c.Password, "password", "bench-password", "chat scenarios: the users' password")
	fs.StringVar(&c.LoginAddr, "login-addr", "", "storm: msgrd's HTTP address `host:port`; devices log in there while being prepared and reconnect with access tokens instead of passwords (needs msgrd's --token-secret-file or --token-key-file)")
	fs.IntVar(&c.Members, "members", 10, "group: members per group, sender included")
	fs.IntVar(&c.Groups, "groups", 1, "group: groups, one sender each")
	fs.IntVar(&c.Missed, "missed", 100, "storm: messages each device missed")
	fs.IntVar(&c.Devices, "devices", 1000, "storm, churn: devices")
	fs.IntVar(&c.Parallel, "parallel", 50, "churn: concurrent connect loops")
	fs.StringVar(&c.JSON, "json", "", "also write the JSON report to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkLoopback("-addr", c.Addr); err != nil {
		return err
	}
	if c.LoginAddr != "" {
		if err := checkLoopback("-login-addr", c.LoginAddr); err != nil {
			return err
		}
	}
	if c.QoS != 0 && c.QoS != 1 {
		return fmt.Errorf("-qos must be 0 or 1")
	}
	if c.Size < 16 {
		return fmt.Errorf("-size must be at least 16")
	}
	if c.Label == "" {
		c.Label = c.Addr
	}
	ctx, cancel := context.WithTimeout(ctx, c.MaxTime)
	defer cancel()
	if c.BrokerPID == 0 {
		pid, err := pidListening(c.Addr)
		if err != nil {
			fmt.Fprintln(stderr, "msgrbench: broker CPU and RSS not measured:", err)
		}
		c.BrokerPID = pid
	}
	if c.DBAddr != "" {
		pid, err := pidListening(c.DBAddr)
		if err != nil {
			return fmt.Errorf("-db-addr: %w", err)
		}
		c.DBPID = pid
	}
	var rep *report
	var err error
	switch c.Scenario {
	case "pairs":
		rep, err = runPairs(ctx, c, stderr)
	case "chat":
		rep, err = runChat(ctx, c, stderr)
	case "group":
		rep, err = runGroup(ctx, c, stderr)
	case "idle":
		rep, err = runIdle(ctx, c, stderr)
	case "storm":
		rep, err = runStorm(ctx, c, stderr)
	case "churn":
		rep, err = runChurn(ctx, c, stderr)
	default:
		return fmt.Errorf("unknown scenario %q", c.Scenario)
	}
	if err != nil {
		return err
	}
	rep.Label, rep.Scenario, rep.Addr = c.Label, c.Scenario, c.Addr
	rep.Date = time.Now().UTC().Format(time.RFC3339)
	rep.CPUs = runtime.NumCPU()
	rep.print(stdout)
	if c.JSON != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(c.JSON, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// checkLoopback refuses addresses that are not on this machine's loopback.
func checkLoopback(flagName, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s: %w", flagName, err)
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return fmt.Errorf("%s: %w", flagName, err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("%s %s: only loopback addresses are allowed (msgrbench measures a broker on this machine)", flagName, addr)
		}
	}
	return nil
}

// plans turns the step flags into the run's steps, warm-up first.
func (c config) plans() []stepPlan {
	var out []stepPlan
	if c.Warmup > 0 {
		out = append(out, stepPlan{Rate: c.Steps[0], Dur: c.Warmup, Warmup: true})
	}
	for _, r := range c.Steps {
		out = append(out, stepPlan{Rate: r, Dur: c.StepDur})
	}
	return out
}

func newStats(plans []stepPlan) []*stepStats {
	out := make([]*stepStats, len(plans))
	for i, p := range plans {
		out[i] = &stepStats{plan: p}
	}
	return out
}

// srcIP returns the source address for connection i: 127.0.0.(1 + i mod n).
func srcIP(i, n int) net.IP {
	if n <= 1 {
		return nil
	}
	return net.IPv4(127, 0, 0, byte(1+i%n))
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
