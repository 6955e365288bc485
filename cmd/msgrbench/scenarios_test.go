package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/broker/brokertest"
)

// quick is a short run: two measured steps of one second. The drain is
// long because it ends as soon as everything has arrived: on a loaded
// machine a commit can stall for seconds, and only loss should fail.
func quick(addr string) config {
	return config{
		Addr: addr, Steps: []float64{100, 200}, StepDur: time.Second, Warmup: 200 * time.Millisecond,
		Drain: 60 * time.Second, MaxTime: 3 * time.Minute, Workers: 2, QoS: 1, Pairs: 4, Size: 64,
		Conns: 50, Hold: 500 * time.Millisecond, KeepAlive: 30 * time.Second,
		Prefix: "bench", Password: "bench-password", Members: 3, Groups: 2, Missed: 5, Devices: 4, Parallel: 2,
	}
}

func startMsgr(t *testing.T) *brokertest.Broker {
	t.Helper()
	tb := brokertest.Start(t, brokertest.WithConfig(func(c *broker.Config) {
		c.AllowAnonymous = true
		c.TopicGrants = "bench/#=rw"
	}))
	for _, p := range []string{"a", "b"} {
		for i := range 4 {
			tb.AddUser(t, fmt.Sprintf("bench%s%d", p, i), "bench-password")
		}
	}
	return tb
}

func startMochi(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mochiCommand(ctx, []string{"-addr", addr}, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("mochi: %v", err)
		}
	})
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("reference mochi did not start")
	return ""
}

// checkSteps requires every message of every step delivered once, with
// latencies recorded.
func checkSteps(t *testing.T, rep *report, fanout int, wantAcks bool) {
	t.Helper()
	if len(rep.Steps) != 3 || !rep.Steps[0].Warmup {
		t.Fatalf("steps %+v", rep.Steps)
	}
	for _, s := range rep.Steps {
		if s.Sent == 0 || s.Skipped != 0 || s.Delivered != s.Sent*uint64(fanout) || s.LossPct != 0 {
			t.Errorf("step %v: sent %d skipped %d delivered %d loss %v", s.Rate, s.Sent, s.Skipped, s.Delivered, s.LossPct)
		}
		if s.E2E.Count != s.Delivered || s.E2E.P50 <= 0 || s.E2E.Max < s.E2E.P99 {
			t.Errorf("step %v: e2e %+v", s.Rate, s.E2E)
		}
		if wantAcks && s.Puback.Count != s.Sent {
			t.Errorf("step %v: %d PUBACKs timed, %d sent", s.Rate, s.Puback.Count, s.Sent)
		}
	}
	// Rate 200/s for a second: the open-loop schedule sends about 200.
	if s := rep.Steps[2]; s.Sent < 180 || s.Sent > 220 {
		t.Errorf("step 200/s sent %d in %v s", s.Sent, s.Seconds)
	}
}

func TestPairsAgainstMsgrAndMochi(t *testing.T) {
	tb := startMsgr(t)
	for _, tt := range []struct {
		name string
		addr string
		qos  int
	}{
		{"msgr qos1", tb.MQTTAddr, 1},
		{"msgr qos0", tb.MQTTAddr, 0},
		{"mochi qos1", startMochi(t), 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := quick(tt.addr)
			c.QoS = tt.qos
			rep, err := runPairs(context.Background(), c, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			checkSteps(t, rep, 1, tt.qos == 1)
			if rep.MaxOK != 200 {
				t.Errorf("max ok rate %v", rep.MaxOK)
			}
		})
	}
}

func TestChatScenarios(t *testing.T) {
	tb := startMsgr(t)
	ctx := context.Background()
	t.Run("chat", func(t *testing.T) {
		rep, err := runChat(ctx, quick(tb.MQTTAddr), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		checkSteps(t, rep, 1, true)
	})
	t.Run("group", func(t *testing.T) {
		rep, err := runGroup(ctx, quick(tb.MQTTAddr), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		checkSteps(t, rep, 2, true)
	})
	t.Run("storm", func(t *testing.T) {
		rep, err := runStorm(ctx, quick(tb.MQTTAddr), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Values["devices_complete"] != 4 || rep.Values["messages_synced"] != int64(20) {
			t.Errorf("storm %v", rep.Values)
		}
	})
	t.Run("churn", func(t *testing.T) {
		rep, err := runChurn(ctx, quick(tb.MQTTAddr), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Values["failed"] != int64(0) || rep.Values["cycles"].(int64) < 2 {
			t.Errorf("churn %v %v", rep.Values, rep.Notes)
		}
	})
	t.Run("idle", func(t *testing.T) {
		c := quick(tb.MQTTAddr)
		c.SrcIPs = 2 // exercises 127.0.0.2 as a source address
		rep, err := runIdle(ctx, c, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Values["held_open_at_end"] != 50 {
			t.Errorf("idle %v", rep.Values)
		}
	})
}

// TestStormWithTokens: with -login-addr the storm devices log in over HTTP
// and reconnect with access tokens; a wrong password fails the login
// clearly instead of measuring refused connections.
func TestStormWithTokens(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "token.secret")
	if err := os.WriteFile(secret, []byte("storm-token-secret-0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	tb := brokertest.Start(t, brokertest.WithConfig(func(c *broker.Config) {
		c.Security.TokenSecretFile = secret
	}))
	for _, name := range []string{"bencha0", "benchb0", "benchb1", "benchb2", "benchb3"} {
		tb.AddUser(t, name, "bench-password")
	}
	c := quick(tb.MQTTAddr)
	c.LoginAddr = tb.HTTPAddr
	rep, err := runStorm(context.Background(), c, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Params["auth"] != "token" || rep.Values["devices_complete"] != 4 || rep.Values["messages_synced"] != int64(20) {
		t.Errorf("storm %v %v", rep.Params, rep.Values)
	}

	c.Password = "wrong"
	if _, err := runStorm(context.Background(), c, io.Discard); err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Errorf("storm with a wrong password: %v, want a failed login", err)
	}
}

func TestLoopbackOnly(t *testing.T) {
	if err := checkLoopback("-addr", "127.0.0.1:1883"); err != nil {
		t.Error(err)
	}
	if err := checkLoopback("-addr", "192.0.2.1:1883"); err == nil {
		t.Error("a non-loopback address was accepted")
	}
}

func TestUsersCommand(t *testing.T) {
	dir := t.TempDir()
	args := []string{"-data-dir", dir, "-names", "ua%d,ub%d", "-n", "3", "-password", "pw"}
	var out strings.Builder
	if err := usersCommand(context.Background(), args, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if out.String() != "6 users created\n" {
		t.Errorf("first run: %q", out.String())
	}
	out.Reset()
	if err := usersCommand(context.Background(), args, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if out.String() != "0 users created\n" {
		t.Errorf("second run (users exist): %q", out.String())
	}
	if err := usersCommand(context.Background(), []string{"-data-dir", dir}, io.Discard, io.Discard); err == nil {
		t.Error("no -names accepted")
	}
}
