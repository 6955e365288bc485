package limits

import (
	"fmt"
	"testing"
	"time"
)

func TestTableExpiresIdleEntries(t *testing.T) {
	tab := newTable[string, int](1000)
	t0 := time.Unix(1000, 0)
	tab.do("idle", t0, func() int { return 0 }, func(v *int) time.Duration { *v++; return time.Second })
	tab.do("busy", t0, func() int { return 0 }, func(v *int) time.Duration { *v++; return time.Hour })
	// The next insertion after the sweep interval drops what expired.
	tab.do("new", t0.Add(2*sweepInterval), func() int { return 0 }, func(*int) time.Duration { return time.Hour })
	if n := tab.len(); n != 2 {
		t.Fatalf("%d entries after the sweep, want 2 (busy, new)", n)
	}
	// An expired entry is as good as absent: it starts afresh.
	var got int
	tab.do("busy", t0.Add(2*time.Hour), func() int { return 0 }, func(v *int) time.Duration { got = *v; return time.Hour })
	if got != 0 {
		t.Fatalf("expired entry kept its value %d", got)
	}
}

func TestTableIsBounded(t *testing.T) {
	tab := newTable[string, int](50)
	now := time.Unix(1000, 0)
	for i := range 10_000 {
		tab.do(fmt.Sprint(i), now, func() int { return 0 }, func(*int) time.Duration { return time.Hour })
		if n := tab.len(); n > 50 {
			t.Fatalf("%d entries after %d insertions, limit 50", n, i+1)
		}
	}
}

func TestLoginBackoffDoublesToMax(t *testing.T) {
	h := New(Options{Config: Config{LoginFailuresUser: 2, LoginBackoff: time.Second, LoginBackoffMax: 8 * time.Second, LoginForget: time.Minute}})
	now := time.Unix(1000, 0)
	for i, want := range []time.Duration{0, 0, 1, 2, 4, 8, 8, 8} {
		h.failed(h.userFail, "alice", now, 2)
		var until time.Time
		h.userFail.peek("alice", now, func(f *failures) { until = f.until })
		got := time.Duration(0)
		if !until.IsZero() {
			got = until.Sub(now) / time.Second
		}
		if got != want {
			t.Fatalf("failure %d: locked for %ds, want %ds", i+1, got, want)
		}
		if locked := h.throttled(h.userFail, "alice", now); locked != (want > 0) {
			t.Fatalf("failure %d: throttled=%v", i+1, locked)
		}
	}
	for range 100 { // no overflow of the shift
		h.failed(h.userFail, "alice", now, 2)
	}
	if !h.throttled(h.userFail, "alice", now.Add(7*time.Second)) || h.throttled(h.userFail, "alice", now.Add(9*time.Second)) {
		t.Fatal("lockout is not capped at the maximum")
	}
	// Failures are forgotten after LoginForget without another.
	h.failed(h.userFail, "bob", now, 2)
	h.failed(h.userFail, "bob", now, 2)
	later := now.Add(2 * time.Minute)
	h.failed(h.userFail, "bob", later, 2)
	if h.throttled(h.userFail, "bob", later) {
		t.Fatal("old failures were not forgotten")
	}
}

func TestAddrKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7:1883":          "192.0.2.7",
		"[2001:db8:1:2:3::9]:443": "2001:db8:1:2::/64",
		"[::ffff:192.0.2.7]:1":    "192.0.2.7",
		"pipe":                    "pipe",
	} {
		if got := addrKey(in); got != want {
			t.Errorf("addrKey(%q) = %q, want %q", in, got, want)
		}
	}
}
