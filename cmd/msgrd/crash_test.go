package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/msgrhq/msgr/protocol"
)

// crashWait bounds every wait in these tests.
const crashWait = 30 * time.Second

// buildDaemon builds msgrd into a temporary directory.
func buildDaemon(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go") // go test puts its own go first on PATH
	if err != nil {
		t.Fatalf("go tool: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "msgrd")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freeAddr returns a 127.0.0.1 address with a port nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// cleanEnv is the test's environment without MSGR_* variables, plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MSGR_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// runOnce runs msgrd to completion with stdin and returns its output and
// exit code.
func runOnce(t *testing.T, bin string, env []string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), crashWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = cleanEnv(env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.Exited():
		code = exit.ExitCode()
	default:
		t.Fatalf("msgrd %v: %v\n%s", args, err, errOut.String())
	}
	return out.String(), errOut.String(), code
}

func addUser(t *testing.T, bin, dataDir, name, password string) {
	t.Helper()
	stdout, stderr, code := runOnce(t, bin, nil, password+"\n", "user", "add", name, "-data-dir", dataDir)
	if code != 0 || stdout != "user "+name+" created\n" {
		t.Fatalf("user add %s: exit %d, %q, %q", name, code, stdout, stderr)
	}
}

// syncBuffer collects a process's output for the test to read.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// daemon is a running msgrd process.
type daemon struct {
	t        *testing.T
	cmd      *exec.Cmd
	mqttAddr string
	log      *syncBuffer
	done     chan struct{} // closed when the process has exited
	state    *os.ProcessState
}

// startDaemon runs msgrd on dataDir and the given addresses and waits
// until it is ready; it is killed when the test ends if still running.
func startDaemon(t *testing.T, bin, dataDir, mqttAddr, httpAddr string) *daemon {
	t.Helper()
	d := &daemon{t: t, mqttAddr: mqttAddr, log: &syncBuffer{}, done: make(chan struct{})}
	// The crash test sends as fast as it can: no per-user message rate.
	d.cmd = exec.Command(bin, "-mqtt-addr", mqttAddr, "-ws-addr=", "-http-addr", httpAddr, "-data-dir", dataDir,
		"-message-rate=0", "-command-rate=0")
	d.cmd.Env = cleanEnv()
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start msgrd: %v", err)
	}
	go func() {
		_ = d.cmd.Wait()
		d.state = d.cmd.ProcessState
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("msgrd log:\n%s", d.log.String())
		}
	})
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(crashWait)
	for {
		resp, err := client.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		select {
		case <-d.done:
			t.Fatalf("msgrd exited while starting: %v\n%s", d.state, d.log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("msgrd not ready within %v\n%s", crashWait, d.log.String())
		}
	}
}

// signal sends sig and returns the exit status once the process is gone.
func (d *daemon) signal(sig syscall.Signal) *os.ProcessState {
	d.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatalf("signal %v: %v", sig, err)
	}
	select {
	case <-d.done:
		return d.state
	case <-time.After(crashWait):
		d.t.Fatalf("msgrd still running %v after %v\n%s", crashWait, sig, d.log.String())
		return nil
	}
}

// chatClient is a plain MQTT 3.1.1 chat device.
type chatClient struct {
	t      *testing.T
	user   string
	c      mqtt3.Client
	events chan protocol.Event
}

func dialChat(t *testing.T, addr, user, device, password string, subscribe bool) *chatClient {
	t.Helper()
	cl := &chatClient{t: t, user: user, events: make(chan protocol.Event, 10000)}
	opts := mqtt3.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(protocol.ClientID(user, device)).
		SetUsername(user).
		SetPassword(password).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(true).
		SetConnectTimeout(crashWait).
		SetWriteTimeout(crashWait)
	cl.c = mqtt3.NewClient(opts)
	if tok := cl.c.Connect(); !tok.WaitTimeout(crashWait) || tok.Error() != nil {
		t.Fatalf("connect %s/%s: %v", user, device, tok.Error())
	}
	t.Cleanup(func() { cl.c.Disconnect(0) })
	if subscribe {
		filters := map[string]byte{protocol.InboxTopic(user): 1, protocol.DeviceTopic(user, device): 1}
		tok := cl.c.SubscribeMultiple(filters, func(_ mqtt3.Client, m mqtt3.Message) {
			var ev protocol.Event
			if err := json.Unmarshal(m.Payload(), &ev); err != nil {
				t.Errorf("undecodable event on %s: %v", m.Topic(), err)
				return
			}
			cl.events <- ev
		})
		if !tok.WaitTimeout(crashWait) || tok.Error() != nil {
			t.Fatalf("subscribe: %v", tok.Error())
		}
		for f, code := range tok.(*mqtt3.SubscribeToken).Result() {
			if code != 1 {
				t.Fatalf("subscribe %s: 0x%02x", f, code)
			}
		}
	}
	return cl
}

// next returns the next event of type ty, skipping others.
func (c *chatClient) next(ty protocol.EventType) protocol.Event {
	c.t.Helper()
	deadline := time.After(crashWait)
	for {
		select {
		case ev := <-c.events:
			if ev.Type == ty {
				return ev
			}
		case <-deadline:
			c.t.Fatalf("%s: no %s event within %v", c.user, ty, crashWait)
		}
	}
}

func (c *chatClient) publish(op protocol.Op, req protocol.Request) mqtt3.Token {
	c.t.Helper()
	req.V = protocol.Version
	payload, err := json.Marshal(req)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.c.Publish(protocol.CommandTopic(c.user, op), 1, false, payload)
}

func sendRequest(cmid string) protocol.Request {
	return protocol.Request{To: "bob", CMID: cmid, Body: &protocol.Body{Type: protocol.BodyText, Text: "text of " + cmid}}
}

// sendLoad sends from several devices at once, a bounded window each, and
// records which sends were acknowledged.
type sendLoad struct {
	killAt  int
	reached chan struct{} // closed once killAt sends are acknowledged
	stop    chan struct{} // closed to stop sending
	wg      sync.WaitGroup
	once    sync.Once

	mu        sync.Mutex
	published []string        // cmids, in the order they were published
	acked     map[string]bool // cmids whose PUBACK arrived
}

// start sends total messages from c with cmids prefix+N in the background.
func (l *sendLoad) start(c *chatClient, prefix string, total, window int) {
	slots := make(chan struct{}, window)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for i := 1; i <= total; i++ {
			select {
			case slots <- struct{}{}:
			case <-l.stop:
				return
			}
			cmid := fmt.Sprintf("%s%04d", prefix, i)
			l.mu.Lock()
			l.published = append(l.published, cmid)
			l.mu.Unlock()
			tok := c.publish(protocol.OpSend, sendRequest(cmid))
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				defer func() { <-slots }()
				if !tok.WaitTimeout(crashWait) || tok.Error() != nil {
					return
				}
				l.mu.Lock()
				l.acked[cmid] = true
				n := len(l.acked)
				l.mu.Unlock()
				if n >= l.killAt {
					l.once.Do(func() { close(l.reached) })
				}
			}()
		}
	}()
}

// A hard crash loses no acknowledged message: the PUBACK of a send means
// the message is durable. Unacknowledged sends retransmitted with their
// cmid after the restart are stored exactly once.
func TestCrashLosesNoAcknowledgedMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and crashes msgrd")
	}
	bin := buildDaemon(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	addUser(t, bin, dataDir, "alice", "alice-password")
	addUser(t, bin, dataDir, "bob", "bob-password")
	mqttAddr, httpAddr := freeAddr(t), freeAddr(t)
	d := startDaemon(t, bin, dataDir, mqttAddr, httpAddr)

	const (
		devices = 4    // concurrent senders, so commits are batched
		perDev  = 1000 // more than can be acknowledged before the kill
		window  = 8    // sends in flight per device
		killAt  = 300  // acknowledged sends before the kill
	)
	load := &sendLoad{acked: map[string]bool{}, reached: make(chan struct{}), stop: make(chan struct{}), killAt: killAt}
	for i := range devices {
		c := dialChat(t, mqttAddr, "alice", fmt.Sprintf("phone%d", i), "alice-password", false)
		load.start(c, fmt.Sprintf("d%d-", i), perDev, window)
	}
	select {
	case <-load.reached:
	case <-time.After(crashWait):
		t.Fatalf("fewer than %d sends acknowledged within %v", killAt, crashWait)
	}
	state := d.signal(syscall.SIGKILL)
	close(load.stop)
	load.wg.Wait()
	published, acked := load.published, load.acked
	if ws, ok := state.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("msgrd did not die of SIGKILL: %v", state)
	}
	var unacked []string
	for _, cmid := range published {
		if !acked[cmid] {
			unacked = append(unacked, cmid)
		}
	}
	nAcked := len(acked)
	if len(unacked) == 0 {
		t.Fatalf("all %d published sends were acknowledged: the kill came too late to test anything", len(published))
	}
	t.Logf("published %d, acknowledged %d before SIGKILL", len(published), nAcked)

	// Restart on the same data directory and retransmit what was not
	// acknowledged, with the same cmids (the idempotency key is the
	// user's, whichever device retransmits).
	startDaemon(t, bin, dataDir, mqttAddr, httpAddr)
	alice := dialChat(t, mqttAddr, "alice", "phone0", "alice-password", true)
	alice.next(protocol.EvSync)
	dups := 0
	for _, cmid := range unacked {
		if tok := alice.publish(protocol.OpSend, sendRequest(cmid)); !tok.WaitTimeout(crashWait) || tok.Error() != nil {
			t.Fatalf("retransmit %s: no PUBACK: %v", cmid, tok.Error())
		}
		ev := alice.next(protocol.EvSent)
		if ev.Sent.CMID != cmid {
			t.Fatalf("retransmit %s: sent %+v", cmid, ev.Sent)
		}
		if ev.Sent.Dup {
			dups++
		}
	}
	t.Logf("retransmitted %d, %d of them had been stored before the crash", len(unacked), dups)

	// A fresh device of bob's syncs everything: every published cmid exactly
	// once, seqs gapless from 1.
	bob := dialChat(t, mqttAddr, "bob", "fresh", "bob-password", true)
	var msgs []protocol.Message
	page := bob.next(protocol.EvSync)
	for {
		msgs = append(msgs, page.Msgs...)
		if !page.More {
			break
		}
		first, last := page.Msgs[0], page.Msgs[len(page.Msgs)-1]
		bob.publish(protocol.OpSync, protocol.Request{Limit: protocol.MaxSyncLimit,
			Ack: []protocol.Cursor{{Conv: last.Conv, From: first.Seq - 1, Seq: last.Seq}}})
		page = bob.next(protocol.EvSync)
	}
	seen := map[string]int64{}
	for i, m := range msgs {
		if m.Seq != int64(i+1) {
			t.Fatalf("message %d has seq %d: seqs are not gapless", i, m.Seq)
		}
		if prev, ok := seen[m.CMID]; ok {
			t.Fatalf("cmid %s stored twice, seqs %d and %d", m.CMID, prev, m.Seq)
		}
		seen[m.CMID] = m.Seq
		var body protocol.Body
		if err := json.Unmarshal(m.Body, &body); err != nil || body.Text != "text of "+m.CMID || m.From != "alice" {
			t.Fatalf("message %+v (body %v)", m, err)
		}
	}
	for _, cmid := range published {
		if _, ok := seen[cmid]; !ok {
			if acked[cmid] {
				t.Errorf("acknowledged message %s lost in the crash", cmid)
			} else {
				t.Errorf("retransmitted message %s missing", cmid)
			}
		}
	}
	if len(msgs) != len(published) {
		t.Errorf("stored %d messages, published %d distinct cmids", len(msgs), len(published))
	}
}

func TestSIGTERMExitsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("builds msgrd")
	}
	bin := buildDaemon(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	addUser(t, bin, dataDir, "alice", "alice-password")
	addUser(t, bin, dataDir, "bob", "bob-password")
	mqttAddr := freeAddr(t)
	d := startDaemon(t, bin, dataDir, mqttAddr, freeAddr(t))
	alice := dialChat(t, mqttAddr, "alice", "phone", "alice-password", true)
	alice.next(protocol.EvSync)
	if tok := alice.publish(protocol.OpSend, sendRequest("before-term")); !tok.WaitTimeout(crashWait) || tok.Error() != nil {
		t.Fatalf("send: %v", tok.Error())
	}
	alice.next(protocol.EvSent)
	// A connection that never sends its CONNECT does not hold the shutdown up.
	silent, err := net.DialTimeout("tcp", mqttAddr, crashWait)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	state := d.signal(syscall.SIGTERM)
	if state.ExitCode() != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0\n%s", state.ExitCode(), d.log.String())
	}
	if !strings.Contains(d.log.String(), "shutting down") {
		t.Errorf("no shutdown in the log:\n%s", d.log.String())
	}
	// The data survives a clean restart too.
	startDaemon(t, bin, dataDir, mqttAddr, freeAddr(t))
	bob := dialChat(t, mqttAddr, "bob", "phone", "bob-password", true)
	if ev := bob.next(protocol.EvSync); len(ev.Msgs) != 1 || ev.Msgs[0].CMID != "before-term" {
		t.Fatalf("bob's sync after restart: %+v", ev)
	}
}

func TestCommandLineErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("builds msgrd")
	}
	bin := buildDaemon(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	addUser(t, bin, dataDir, "alice", "alice-password")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	tests := []struct {
		name   string
		env    []string
		stdin  string
		args   []string
		code   int
		stderr string
	}{
		{"duplicate user", nil, "pw\n", []string{"user", "add", "alice", "-data-dir", dataDir}, 1, "msgrd: user alice already exists"},
		{"invalid user name", nil, "pw\n", []string{"user", "add", "Alice", "-data-dir", dataDir}, 1, `msgrd: invalid user name "Alice"`},
		{"user name with slash", nil, "pw\n", []string{"user", "add", "a/b", "-data-dir", dataDir}, 1, `invalid user name "a/b"`},
		{"empty password", nil, "", []string{"user", "add", "bob", "-data-dir", dataDir}, 1, "msgrd: no password on stdin"},
		{"blank password line", nil, "\n", []string{"user", "add", "bob", "-data-dir", dataDir}, 1, "no password on stdin"},
		{"no user name", nil, "pw\n", []string{"user", "add"}, 1, "usage: msgrd user add|passwd NAME"},
		{"unknown user verb", nil, "pw\n", []string{"user", "delete", "alice"}, 1, "usage: msgrd user add|passwd NAME"},
		{"passwd unknown user", nil, "pw\n", []string{"user", "passwd", "carol", "-data-dir", dataDir}, 1, "msgrd: user carol does not exist"},
		{"user add bad flag", nil, "pw\n", []string{"user", "add", "bob", "-nope"}, 1, "flag provided but not defined: -nope"},
		{"unknown flag", nil, "", []string{"-nope"}, 1, "flag provided but not defined: -nope"},
		{"help", nil, "", []string{"-h"}, 2, "-mqtt-addr"},
		{"stray argument", nil, "", []string{"-data-dir", dataDir, "serve"}, 1, `msgrd: unexpected argument "serve"`},
		{"bad flag value", nil, "", []string{"-max-text-bytes", "lots"}, 1, `invalid value "lots" for flag -max-text-bytes`},
		{"invalid flag value", nil, "", []string{"-mqtt-addr", "nowhere"}, 1, `msgrd: mqtt-addr: "nowhere" is not a host:port address`},
		{"bad env number", []string{"MSGR_MAX_TEXT_BYTES=lots"}, "", nil, 1, `msgrd: MSGR_MAX_TEXT_BYTES="lots"`},
		{"bad env bool", []string{"MSGR_ALLOW_ANONYMOUS=perhaps"}, "", nil, 1, `MSGR_ALLOW_ANONYMOUS="perhaps"`},
		{"bad env log level", []string{"MSGR_LOG_LEVEL=loud"}, "", nil, 1, `msgrd: log-level: "loud" is not debug, info, warn or error`},
		{"bad env grant", []string{"MSGR_TOPIC_GRANTS=#=rw"}, "", nil, 1, `msgrd: topic-grants: topic grant "#=rw"`},
		{"env grant on chat", []string{"MSGR_TOPIC_GRANTS=sensors/#=rw,msgr/#=r"}, "", nil, 1, "the chat namespace is never granted"},
		{"bad env database url", []string{"MSGR_DATABASE_URL=mysql://x"}, "", nil, 1, "database-url: must start with postgres://"},
		{"port in use", nil, "", []string{"-data-dir", dataDir, "-mqtt-addr", busy.Addr().String(), "-ws-addr=", "-http-addr="}, 1, "msgrd: mqtt listener"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runOnce(t, bin, tt.env, tt.stdin, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q (stdout %q)", code, stderr, tt.code, tt.stderr, stdout)
			}
			if strings.Contains(stdout, "created") {
				t.Errorf("stdout %q", stdout)
			}
		})
	}

	// The refused commands changed nothing: alice still logs in with her
	// password and bob does not exist.
	stdout, stderr, code := runOnce(t, bin, nil, "new-password\n", "user", "passwd", "alice", "-data-dir", dataDir)
	if code != 0 || stdout != "password of alice changed\n" {
		t.Fatalf("passwd alice: exit %d, %q, %q", code, stdout, stderr)
	}
	addUser(t, bin, dataDir, "bob", "bob-password")
}
