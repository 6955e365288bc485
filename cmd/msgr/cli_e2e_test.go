package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/msgrhq/msgr/broker/brokertest"
	msgr "github.com/msgrhq/msgr/clients/go"
)

const testPassword = "secret-password"

// cli runs the msgr binary against a test broker.
type cli struct {
	t      *testing.T
	bin    string
	server string
}

func buildCLI(t *testing.T, server string) *cli {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "msgr")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goTool, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return &cli{t: t, bin: bin, server: server}
}

func (c *cli) command(ctx context.Context, stdin string, withPassword bool, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = append(os.Environ(), "MSGR_SERVER="+c.server, "MSGR_PASSWORD=", "MSGR_USER=", "MSGR_DEVICE=")
	if withPassword {
		cmd.Env = append(cmd.Env, "MSGR_PASSWORD="+testPassword)
	}
	cmd.Stdin = strings.NewReader(stdin)
	return cmd
}

// run runs the binary to completion and returns its output and exit code.
func (c *cli) run(stdin string, args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	return c.runEnv(stdin, true, args...)
}

func (c *cli) runEnv(stdin string, withPassword bool, args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := c.command(ctx, stdin, withPassword, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		c.t.Fatalf("msgr %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// ok runs the binary and fails the test unless it exits 0.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	stdout, stderr, code := c.run("", args...)
	if code != 0 {
		c.t.Fatalf("msgr %v: exit %d\nstdout: %s\nstderr: %s", args, code, stdout, stderr)
	}
	return stdout
}

var groupLine = regexp.MustCompile(`^✓ group (\S+) "Trip": alice \(owner\), bob, carol\n$`)

func TestCLI(t *testing.T) {
	b := brokertest.Start(t)
	for _, u := range []string{"alice", "bob", "carol"} {
		b.AddUser(t, u, testPassword)
	}
	c := buildCLI(t, "mqtt://"+b.MQTTAddr)

	if out := c.ok("--user", "alice", "send", "bob", "hello", "there"); out != "✓ sent seq 1\n" {
		t.Fatalf("send printed %q", out)
	}
	// Password from stdin, flags after the command, device flag.
	stdout, stderr, code := c.runEnv(testPassword+"\n", false, "send", "--user", "bob", "--device", "laptop", "alice", "hi alice")
	if code != 0 || stdout != "✓ sent seq 2\n" {
		t.Fatalf("send with password on stdin: exit %d, %q, %q", code, stdout, stderr)
	}

	out := c.ok("--user", "bob", "history", "alice")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !regexp.MustCompile(`^\[\S+\] 1 alice: hello there$`).MatchString(lines[0]) ||
		!regexp.MustCompile(`^\[\S+\] 2 bob: hi alice$`).MatchString(lines[1]) {
		t.Fatalf("history:\n%s", out)
	}
	if out := c.ok("--user", "alice", "history", "-n", "1", "bob"); !strings.HasSuffix(out, "2 bob: hi alice\n") || strings.Count(out, "\n") != 1 {
		t.Fatalf("history -n 1:\n%s", out)
	}

	t.Run("errors", func(t *testing.T) {
		_, stderr, code := c.runEnv("", false, "--user", "alice", "--password", "wrong", "--timeout", "5s", "send", "bob", "x")
		if code != 1 || !strings.Contains(stderr, "msgr: dial") {
			t.Fatalf("wrong password: exit %d, stderr %q", code, stderr)
		}
		_, stderr, code = c.run("", "--user", "alice", "send", "nobody", "x")
		if code != 1 || !strings.Contains(stderr, "not_found") {
			t.Fatalf("unknown user: exit %d, stderr %q", code, stderr)
		}
		_, stderr, code = c.run("", "--user", "alice", "send")
		if code != 2 || !strings.Contains(stderr, "usage: msgr send") {
			t.Fatalf("usage: exit %d, stderr %q", code, stderr)
		}
	})

	var group string
	t.Run("group", func(t *testing.T) {
		out := c.ok("--user", "alice", "group", "create", "Trip", "bob", "carol")
		m := groupLine.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("group create printed %q", out)
		}
		group = m[1]
		c.ok("--user", "carol", "send", "--conv", group, "hi", "all")
		out = c.ok("--user", "bob", "history", "--conv", group)
		want := []string{
			`^\[` + group + `\] 1 \* alice created the group "Trip"$`,
			`^\[` + group + `\] 2 carol: hi all$`,
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != len(want) {
			t.Fatalf("history:\n%s", out)
		}
		for i, w := range want {
			if !regexp.MustCompile(w).MatchString(lines[i]) {
				t.Errorf("line %d %q does not match %s", i, lines[i], w)
			}
		}
		if out := c.ok("--user", "alice", "group", "remove", group, "carol"); !strings.HasPrefix(out, "✓ group "+group+` "Trip": alice (owner), bob`) {
			t.Fatalf("group remove printed %q", out)
		}
		_, stderr, code := c.run("", "--user", "carol", "send", "--conv", group, "still here?")
		if code != 1 || !strings.Contains(stderr, "not_member") {
			t.Fatalf("removed member sends: exit %d, stderr %q", code, stderr)
		}
		c.ok("--user", "alice", "group", "add", "--role", "admin", group, "carol")
		c.ok("--user", "carol", "group", "leave", group)
		out = c.ok("--user", "bob", "convs")
		if !strings.Contains(out, group) || !strings.Contains(out, "Trip") || !strings.HasPrefix(out, "ID") {
			t.Fatalf("convs:\n%s", out)
		}
	})

	t.Run("chat", func(t *testing.T) {
		_, stderr, code := c.run("line one\n\nline two\n", "--user", "carol", "chat", "alice")
		if code != 0 {
			t.Fatalf("chat: exit %d, stderr %q", code, stderr)
		}
		out := c.ok("--user", "alice", "history", "carol")
		if !regexp.MustCompile(`^\[\S+\] 1 carol: line one\n\[\S+\] 2 carol: line two\n$`).MatchString(out) {
			t.Fatalf("history after chat:\n%s", out)
		}

		// Interactive: carol's chat prints alice's message as it arrives.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := c.command(ctx, "", true, "--user", "carol", "chat", "alice")
		cmd.Stdin = nil
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		lines, wait := startLines(t, cmd)
		if _, err := stdin.Write([]byte("are you there?\n")); err != nil {
			t.Fatal(err)
		}
		for !strings.Contains(c.ok("--user", "alice", "history", "-n", "1", "carol"), "3 carol: are you there?") {
			if ctx.Err() != nil {
				t.Fatal("carol's message was not stored")
			}
			time.Sleep(20 * time.Millisecond)
		}
		// What carol types is not echoed: the first line is alice's answer.
		c.ok("--user", "alice", "send", "carol", "yes")
		m := expectLine(t, ctx, lines, `^\[(\S+)\] 4 alice: yes$`, false)
		stdin.Close()
		if err := wait(); err != nil {
			t.Fatalf("chat after EOF: %v", err)
		}
		out = c.ok("--user", "alice", "history", "-n", "2", "carol")
		if !strings.Contains(out, "carol: are you there?\n") || !strings.Contains(out, "alice: yes\n") {
			t.Fatalf("history after interactive chat:\n%s", out)
		}
		// What chat showed, it marked read (carol's own message read her
		// up to 3).
		out = c.ok("--user", "alice", "receipts", m[1])
		if !regexp.MustCompile(`(?m)^carol\s+4\s+4$`).MatchString(out) {
			t.Fatalf("receipts after carol's chat showed seq 4:\n%s", out)
		}
	})

	t.Run("listen", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := c.command(ctx, "", true, "--user", "bob", "--device", "listener", "listen")
		lines, wait := startLines(t, cmd)
		// A new device first catches up on what it missed, then gets live messages.
		expectLine(t, ctx, lines, `^\[\S+\] 1 alice: hello there$`, true)
		expectLine(t, ctx, lines, `^\[`+group+`\] 2 carol: hi all$`, true)
		c.ok("--user", "alice", "send", "bob", "live now")
		expectLine(t, ctx, lines, `^\[\S+\] 3 alice: live now$`, true)

		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if err := wait(); err != nil {
			t.Fatalf("listen after interrupt: %v", err)
		}
	})
}

// startLines starts cmd and returns its stdout lines and a function that
// waits for it to exit.
func startLines(t *testing.T, cmd *exec.Cmd) (<-chan string, func() error) {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines, func() error {
		for range lines {
		}
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("%w; stderr %q", err, stderr.String())
		}
		return nil
	}
}

// expectLine reads lines until one matches re and returns its submatches;
// with skip false it must be the next line.
func expectLine(t *testing.T, ctx context.Context, lines <-chan string, re string, skip bool) []string {
	t.Helper()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("output ended before a line matching %s", re)
			}
			if m := regexp.MustCompile(re).FindStringSubmatch(line); m != nil {
				return m
			}
			if !skip {
				t.Fatalf("line %q does not match %s", line, re)
			}
		case <-ctx.Done():
			t.Fatalf("no line matching %s", re)
		}
	}
}

func TestCLIReceiptsPresenceSettings(t *testing.T) {
	b := brokertest.Start(t)
	for _, u := range []string{"alice", "bob", "carol"} {
		b.AddUser(t, u, testPassword)
	}
	c := buildCLI(t, "mqtt://"+b.MQTTAddr)

	c.ok("--user", "alice", "send", "bob", "one")
	c.ok("--user", "alice", "send", "bob", "two")
	// bob's first look: the conversation with two unread messages.
	out := c.ok("--user", "bob", "convs")
	m := regexp.MustCompile(`(?m)^(\S+)\s+direct\s+2\s+2\s+alice\s`).FindStringSubmatch(out)
	if !strings.HasPrefix(out, "ID") || !strings.Contains(out, "UNREAD") || m == nil {
		t.Fatalf("convs:\n%s", out)
	}
	conv := m[1]

	// alice listens while bob reads, comes online, types and leaves.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	listen := c.command(ctx, "", true, "--user", "alice", "--device", "listener", "listen")
	lines, wait := startLines(t, listen)
	expectLine(t, ctx, lines, `^\[`+conv+`\] 2 alice: two$`, true) // caught up

	if out := c.ok("--user", "bob", "read", conv, "1"); out != "✓ read up to 1 in "+conv+"\n" {
		t.Fatalf("read printed %q", out)
	}
	expectLine(t, ctx, lines, `^\[`+conv+`\] ✓✓ read up to 1 by bob$`, true)
	// Delivered is 2 only if one of bob's short-lived CLI runs acknowledged
	// the sync page pushed to it before exiting (and the acknowledgement
	// was flushed, every 200 ms); reading 1 guarantees at least 1.
	out = c.ok("--user", "alice", "receipts", conv)
	if !strings.HasPrefix(out, "USER") || !regexp.MustCompile(`(?m)^bob\s+[12]\s+1$`).MatchString(out) {
		t.Fatalf("receipts:\n%s", out)
	}
	if out := c.ok("--user", "bob", "convs"); !regexp.MustCompile(`(?m)^` + conv + `\s+direct\s+2\s+1\s+alice\s`).MatchString(out) {
		t.Fatalf("convs after reading one:\n%s", out)
	}

	bob := dialSDK(t, b.MQTTAddr, "bob", "phone")
	expectLine(t, ctx, lines, `^bob is online$`, true)
	if out := c.ok("--user", "alice", "presence", "bob", "carol"); out != "bob: online\ncarol: hidden\n" {
		t.Fatalf("presence while bob is online:\n%s", out)
	}
	tctx, tcancel := context.WithTimeout(ctx, 10*time.Second)
	defer tcancel()
	if err := bob.Typing(tctx, conv); err != nil {
		t.Fatal(err)
	}
	expectLine(t, ctx, lines, `^\[`+conv+`\] bob is typing…$`, true)
	if err := bob.Close(); err != nil {
		t.Fatal(err)
	}
	expectLine(t, ctx, lines, `^bob was last seen (\d{4}-\d\d-\d\d )?\d\d:\d\d$`, true)
	if err := listen.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatalf("listen after interrupt: %v", err)
	}
	if out := c.ok("--user", "alice", "presence", "bob"); !regexp.MustCompile(`^bob: last seen \d{4}-\d\d-\d\d \d\d:\d\d\n$`).MatchString(out) {
		t.Fatalf("presence after bob left:\n%s", out)
	}

	// Settings: shown, changed, and in force.
	if out := c.ok("--user", "bob", "settings"); out != "presence: contacts\nread receipts: on\n" {
		t.Fatalf("settings:\n%s", out)
	}
	if out := c.ok("--user", "bob", "settings", "--presence", "nobody", "--read-receipts=false"); out != "presence: nobody\nread receipts: off\n" {
		t.Fatalf("settings after change:\n%s", out)
	}
	if out := c.ok("--user", "bob", "settings", "--presence", "everyone"); out != "presence: everyone\nread receipts: off\n" {
		t.Fatalf("settings after changing presence only:\n%s", out)
	}
	c.ok("--user", "bob", "read", conv, "2")
	if out := c.ok("--user", "alice", "receipts", conv); !regexp.MustCompile(`(?m)^bob\s+2\s+0$`).MatchString(out) {
		t.Fatalf("receipts with bob's read receipts off:\n%s", out)
	}

	_, stderr, code := c.run("", "--user", "alice", "receipts", "01JD0000000000000000000000")
	if code != 1 || !strings.Contains(stderr, "msgr: receipts: ") {
		t.Fatalf("receipts of an unknown conversation: exit %d, stderr %q", code, stderr)
	}
}

// dialSDK connects user/device with the Go SDK; it is closed when the
// test ends.
func dialSDK(t *testing.T, addr, user, device string) *msgr.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := msgr.Dial(ctx, msgr.Config{ServerURL: "mqtt://" + addr, User: user, Device: device, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}
