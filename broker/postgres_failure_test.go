package broker_test

// Failure behaviour on PostgreSQL. Each test runs the broker on its own
// PostgreSQL server (pgtest.StartServer) and crashes it; the shared test
// server other packages use in parallel is never touched.

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
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/broker/brokertest"
	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage"
	"github.com/msgrhq/msgr/storage/postgres/pgtest"
)

// outageDown is how long PostgreSQL stays down in the outage tests.
const outageDown = 3 * time.Second

// noAckWait is how long a 3.1.1 client that got an "unavailable" error
// event waits for a PUBACK that must not come.
const noAckWait = time.Second

// withDatabase runs the broker on databaseURL.
func withDatabase(databaseURL string) brokertest.Option {
	return brokertest.WithConfig(func(c *broker.Config) { c.DatabaseURL = databaseURL })
}

// TestPostgresOutage crashes PostgreSQL while MQTT 3.1.1 and MQTT 5 clients
// send, keeps it down, and starts it again. Every send must end either
// acknowledged (and then stored exactly once) or reported as failed, the
// broker must recover without a restart, and retrying the failed sends with
// their client message ids must store each exactly once.
func TestPostgresOutage(t *testing.T) {
	pg := pgtest.StartServer(t)
	b := brokertest.Start(t, withDatabase(pg.URL()))
	users(t, b, "alice", "bob", "carol", "dave")
	senders := []*outageSender{
		{name: "v3", client: dialV3(t, b, "alice", "phone", "pw-alice", v3Options{}), to: "bob"},
		{name: "v5", client: dialV5Sender(t, b, "carol", "phone", "pw-carol"), to: "dave"},
	}
	for _, s := range senders {
		s.open(t)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range senders {
		wg.Go(func() { s.run(t, stop) })
	}
	stopSenders := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer stopSenders() // also when a wait below fails the test

	waitAll(t, senders, "acknowledged sends before the crash", func(s *outageSender) bool { return s.count(true) >= 10 })
	pg.Crash(t)
	time.Sleep(outageDown)
	waitAll(t, senders, "failed sends while PostgreSQL is down", func(s *outageSender) bool { return s.count(false) >= 1 })
	before := make(map[*outageSender]int)
	for _, s := range senders {
		before[s] = s.count(true)
	}
	pg.Start(t)
	waitAll(t, senders, "acknowledged sends after PostgreSQL is back (the broker must recover by itself)",
		func(s *outageSender) bool { return s.count(true) >= before[s]+10 })
	stopSenders()
	if t.Failed() {
		return
	}

	store := b.Store()
	for _, s := range senders {
		t.Logf("%s: %d sends acknowledged, %d failed", s.name, len(s.acked), len(s.failed))
		stored := s.checkStored(t, store, false)

		// Retry every failed send with the same client message id. One
		// whose commit outcome was unknown to the broker may already be
		// stored: the retry must then be a duplicate of it.
		for _, cmid := range s.failed {
			out, err := s.client.trySend(s.request(cmid))
			if err != nil {
				t.Fatalf("%s: retry: %v", s.name, err)
			}
			if !out.acked {
				t.Fatalf("%s: retry of %s failed after recovery", s.name, cmid)
			}
			if seq, ok := stored[cmid]; ok != out.dup || (ok && out.seq != seq) {
				t.Errorf("%s: retry of %s = seq %d dup %v; stored before: %v (seq %d)", s.name, cmid, out.seq, out.dup, ok, seq)
			}
			s.acked[cmid] = out.seq
		}
		s.checkStored(t, store, true)
	}
}

// TestPostgresReadyz checks that /readyz follows the database while
// /healthz (the process is alive) does not.
func TestPostgresReadyz(t *testing.T) {
	pg := pgtest.StartServer(t)
	b := brokertest.Start(t, withDatabase(pg.URL()))
	get := func(path string) int {
		t.Helper()
		c := http.Client{Timeout: waitFor}
		resp, err := c.Get("http://" + b.HTTPAddr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	check := func(when string, ready int) {
		t.Helper()
		if code := get("/readyz"); code != ready {
			t.Errorf("%s: /readyz = %d, want %d", when, code, ready)
		}
		if code := get("/healthz"); code != http.StatusOK {
			t.Errorf("%s: /healthz = %d, want 200", when, code)
		}
	}

	check("database up", http.StatusOK)
	pg.Crash(t)
	// Repeatedly: the pool must not answer from a connection that was
	// fine before the crash.
	for range 3 {
		check("database down", http.StatusServiceUnavailable)
		time.Sleep(300 * time.Millisecond)
	}
	pg.Start(t)
	deadline := time.Now().Add(waitFor)
	for get("/readyz") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not 200 within %v of the database's return", waitFor)
		}
		time.Sleep(100 * time.Millisecond)
	}
	check("database back", http.StatusOK)
}

// TestMsgrdDatabaseUnreachable starts msgrd against databases it cannot
// use: it must exit non-zero, soon, saying which database it could not
// reach, instead of hanging or serving without a store.
func TestMsgrdDatabaseUnreachable(t *testing.T) {
	bin := buildMsgrd(t)
	tests := []struct {
		name   string
		listen func(t *testing.T) string // returns host:port
		want   []string                  // in stderr, besides the address
	}{
		{"closed port", closedPort, []string{"cannot reach", "connection refused"}},
		{"server never answers", silentServer, []string{"cannot reach", "timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := tt.listen(t)
			// Bounds a hang; Open's connect timeout makes msgrd give up well before.
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "-mqtt-addr", "127.0.0.1:0", "-ws-addr", "", "-http-addr", "")
			cmd.Env = append(os.Environ(), "MSGR_DATABASE_URL=postgres://msgr@"+addr+"/msgr",
				"MSGR_MASTER_KEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=") // a valid key, so the database is tried
			var stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stderr, &stderr
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("msgrd still running after 15 s with the database unreachable; output:\n%s", stderr.String())
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() <= 0 {
				t.Fatalf("msgrd: %v, want a non-zero exit; output:\n%s", err, stderr.String())
			}
			for _, want := range append(tt.want, addr) {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("output does not mention %q:\n%s", want, stderr.String())
				}
			}
		})
	}
}

func buildMsgrd(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go tool not on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "msgrd")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", bin, "../cmd/msgrd")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// closedPort returns an address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// silentServer returns the address of a server that accepts connections
// and never says anything, like a database host that hangs.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// waitAll waits until cond holds for every sender, failing the test after
// a generous bound or as soon as a sender has failed it.
func waitAll(t *testing.T, senders []*outageSender, what string, cond func(*outageSender) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		for _, s := range senders {
			ok = ok && cond(s)
		}
		switch {
		case ok:
			return
		case t.Failed():
			t.FailNow()
		case time.Now().After(deadline):
			for _, s := range senders {
				t.Logf("%s: %d acknowledged, %d failed", s.name, s.count(true), s.count(false))
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// outcome is how the broker answered one send.
type outcome struct {
	acked bool // stored: success PUBACK and a sent event; else failed, retryable
	conv  string
	seq   int64
	dup   bool
}

// chatSender sends one send request and reports the broker's answer. An
// error means the answer broke the protocol, e.g. a success PUBACK with an
// error event, or no answer at all.
type chatSender interface {
	trySend(req protocol.Request) (outcome, error)
}

// outageSender sends continuously to one direct conversation and records
// the outcome of every send.
type outageSender struct {
	name   string
	client chatSender
	to     string
	conv   string

	mu     sync.Mutex
	acked  map[string]int64 // client message id -> seq
	failed []string         // client message ids, in order
}

// open creates the conversation with a first, acknowledged send.
func (s *outageSender) open(t *testing.T) {
	t.Helper()
	s.acked = make(map[string]int64)
	cmid := s.name + "-first"
	out, err := s.client.trySend(protocol.Request{V: protocol.Version, ID: cmid, To: s.to, CMID: cmid, Body: text(cmid)})
	if err != nil || !out.acked {
		t.Fatalf("%s: first send: %+v, %v", s.name, out, err)
	}
	s.acked[cmid] = out.seq
	s.conv = out.conv
}

func (s *outageSender) request(cmid string) protocol.Request {
	// The client message id doubles as request id, to match the reply.
	return protocol.Request{V: protocol.Version, ID: cmid, Conv: s.conv, CMID: cmid, Body: text("message " + cmid)}
}

func (s *outageSender) run(t *testing.T, stop <-chan struct{}) {
	for i := 1; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		cmid := fmt.Sprintf("%s-%05d", s.name, i)
		out, err := s.client.trySend(s.request(cmid))
		if err != nil {
			t.Errorf("%s: %v", s.name, err)
			return
		}
		s.mu.Lock()
		if out.acked {
			if out.dup {
				t.Errorf("%s: new message %s acknowledged as a duplicate of seq %d", s.name, cmid, out.seq)
			}
			s.acked[cmid] = out.seq
		} else {
			s.failed = append(s.failed, cmid)
		}
		s.mu.Unlock()
		if !out.acked {
			time.Sleep(50 * time.Millisecond) // back off, as a client would
		}
	}
}

// count returns the number of acknowledged (or failed) sends so far.
func (s *outageSender) count(acked bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if acked {
		return len(s.acked)
	}
	return len(s.failed)
}

// checkStored reads the conversation from the store and checks it against
// the outcomes: seqs are gapless from 1; every acknowledged message is
// stored exactly once with the acknowledged seq; nothing else is stored but
// failed sends, each at most once; and with all set, every failed send is
// stored too. It returns the stored seq of each client message id.
func (s *outageSender) checkStored(t *testing.T, store storage.Store, all bool) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	msgs, err := store.MessagesAfter(ctx, s.conv, 0, 1<<62, 0)
	if err != nil {
		t.Fatalf("%s: read conversation: %v", s.name, err)
	}
	failed := make(map[string]bool)
	for _, cmid := range s.failed {
		failed[cmid] = true
	}
	stored := make(map[string]int64)
	for i, m := range msgs {
		if m.Seq != int64(i+1) {
			t.Fatalf("%s: stored message %d has seq %d: seqs are not gapless", s.name, i, m.Seq)
		}
		if _, dup := stored[m.ClientMsgID]; dup {
			t.Errorf("%s: %s is stored twice", s.name, m.ClientMsgID)
		}
		stored[m.ClientMsgID] = m.Seq
		if _, ok := s.acked[m.ClientMsgID]; !ok && !failed[m.ClientMsgID] {
			t.Errorf("%s: %s (seq %d) is stored but was never sent", s.name, m.ClientMsgID, m.Seq)
		}
	}
	for cmid, seq := range s.acked {
		if got, ok := stored[cmid]; !ok || got != seq {
			t.Errorf("%s: %s was acknowledged with seq %d but is stored: %v (seq %d)", s.name, cmid, seq, ok, got)
		}
	}
	inDoubt := 0
	for cmid := range failed {
		if _, ok := stored[cmid]; ok {
			inDoubt++
		} else if all {
			t.Errorf("%s: %s was retried but is not stored", s.name, cmid)
		}
	}
	if !all && inDoubt > 0 {
		// Possible when the connection broke during COMMIT: the broker
		// cannot know, reports the send as failed, and the retry finds it.
		t.Logf("%s: %d failed sends were stored nevertheless", s.name, inDoubt)
	}
	return stored
}

// trySend sends req as a 3.1.1 client. Acknowledged: a PUBACK and a sent
// event. Failed: an "unavailable" error event and no PUBACK, so that the
// client would retransmit.
func (c *v3) trySend(req protocol.Request) (outcome, error) {
	payload, err := json.Marshal(req)
	if err != nil {
		return outcome{}, err
	}
	tok := c.c.Publish(protocol.CommandTopic(c.user, protocol.OpSend), 1, false, payload)
	ev, err := awaitReply(c.events, req.ID)
	if err != nil {
		return outcome{}, err
	}
	if ev.Type == protocol.EvSent {
		if !tok.WaitTimeout(waitFor) || tok.Error() != nil {
			return outcome{}, fmt.Errorf("%s: sent event but no PUBACK (%v)", req.CMID, tok.Error())
		}
		return outcome{acked: true, conv: ev.Sent.Conv, seq: ev.Sent.Seq, dup: ev.Sent.Dup}, nil
	}
	if ev.Error.Code != protocol.CodeUnavailable {
		return outcome{}, fmt.Errorf("%s: error event %v, want %s", req.CMID, ev.Error, protocol.CodeUnavailable)
	}
	if tok.WaitTimeout(noAckWait) {
		return outcome{}, fmt.Errorf("%s: PUBACK (error %v) although the error event says %v", req.CMID, tok.Error(), ev.Error)
	}
	return outcome{}, nil
}

// v5Sender is a plain MQTT 5 chat client (paho.golang without autopaho).
type v5Sender struct {
	user   string
	c      *paho.Client
	events chan protocol.Event
}

func dialV5Sender(t *testing.T, b *brokertest.Broker, user, device, password string) *v5Sender {
	t.Helper()
	conn, err := net.DialTimeout("tcp", b.MQTTAddr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	cl := &v5Sender{user: user, events: make(chan protocol.Event, 10000)}
	cl.c = paho.NewClient(paho.ClientConfig{
		Conn:     conn,
		ClientID: user + "/" + device,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			var ev protocol.Event
			if err := json.Unmarshal(pr.Packet.Payload, &ev); err != nil {
				t.Errorf("%s: undecodable event on %s: %v", user, pr.Packet.Topic, err)
				return true, nil
			}
			cl.events <- ev
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ca, err := cl.c.Connect(ctx, &paho.Connect{
		ClientID:     user + "/" + device,
		CleanStart:   true,
		KeepAlive:    30,
		Username:     user,
		UsernameFlag: true,
		Password:     []byte(password),
		PasswordFlag: true,
	})
	if err != nil {
		t.Fatalf("connect %s/%s: %v", user, device, err)
	}
	if ca.ReasonCode != 0 {
		t.Fatalf("connect %s/%s: CONNACK 0x%02x", user, device, ca.ReasonCode)
	}
	t.Cleanup(func() { _ = cl.c.Disconnect(&paho.Disconnect{}) })
	sa, err := cl.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: protocol.InboxTopic(user), QoS: 1},
		{Topic: protocol.DeviceTopic(user, device), QoS: 1},
	}})
	if err != nil {
		t.Fatalf("subscribe %s/%s: %v", user, device, err)
	}
	for _, r := range sa.Reasons {
		if r > 1 {
			t.Fatalf("subscribe %s/%s: SUBACK 0x%02x", user, device, r)
		}
	}
	return cl
}

// trySend sends req as an MQTT 5 client. Acknowledged: a success PUBACK
// and a sent event. Failed: PUBACK 0x80 and an "unavailable" error event.
func (c *v5Sender) trySend(req protocol.Request) (outcome, error) {
	payload, err := json.Marshal(req)
	if err != nil {
		return outcome{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	pr, err := c.c.Publish(ctx, &paho.Publish{QoS: 1, Topic: protocol.CommandTopic(c.user, protocol.OpSend), Payload: payload})
	if pr == nil {
		return outcome{}, fmt.Errorf("%s: no PUBACK: %v", req.CMID, err)
	}
	ev, err := awaitReply(c.events, req.ID)
	if err != nil {
		return outcome{}, err
	}
	switch {
	case pr.ReasonCode == 0 && ev.Type == protocol.EvSent:
		return outcome{acked: true, conv: ev.Sent.Conv, seq: ev.Sent.Seq, dup: ev.Sent.Dup}, nil
	case pr.ReasonCode == 0x80 && ev.Type == protocol.EvError && ev.Error.Code == protocol.CodeUnavailable:
		return outcome{}, nil
	}
	return outcome{}, fmt.Errorf("%s: PUBACK 0x%02x with %s event (error %v)", req.CMID, pr.ReasonCode, ev.Type, ev.Error)
}

// awaitReply returns the sent or error event answering the send request
// id, skipping other events (inbox messages, the sync push).
func awaitReply(events <-chan protocol.Event, id string) (protocol.Event, error) {
	deadline := time.After(waitFor)
	for {
		select {
		case ev := <-events:
			if ev.Op != protocol.OpSend {
				continue
			}
			if ev.Req != id {
				return ev, fmt.Errorf("reply to %q while waiting for %q: %+v", ev.Req, id, ev)
			}
			if (ev.Type == protocol.EvSent && ev.Sent != nil) || (ev.Type == protocol.EvError && ev.Error != nil) {
				return ev, nil
			}
			return ev, fmt.Errorf("malformed reply to %q: %+v", id, ev)
		case <-deadline:
			return protocol.Event{}, fmt.Errorf("no reply to %q within %v", id, waitFor)
		}
	}
}
