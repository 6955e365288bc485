package broker_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/broker/brokertest"
	msgr "github.com/msgrhq/msgr/clients/go"
	"github.com/msgrhq/msgr/protocol"
)

// startCluster starts n broker nodes named n0, n1, ... on one PostgreSQL
// schema and one Redis namespace.
func startCluster(t *testing.T, n int, tweak ...func(*brokertest.Cluster)) (*brokertest.Cluster, []*brokertest.Broker) {
	t.Helper()
	c := brokertest.NewCluster(t)
	for _, f := range tweak {
		f(c)
	}
	nodes := make([]*brokertest.Broker, n)
	for i := range nodes {
		nodes[i] = brokertest.Start(t, c.Node(fmt.Sprintf("n%d", i)))
	}
	return c, nodes
}

// nextText returns the next text message event, skipping system notes.
func nextText(c *v3) protocol.Message {
	c.t.Helper()
	for {
		ev := c.next(protocol.EvMessage)
		if ev.Msg != nil && strings.Contains(string(ev.Msg.Body), `"type":"text"`) {
			return *ev.Msg
		}
	}
}

// textAt waits for the text message seq of conv, skipping earlier ones
// (such as the device's own sends echoed on its inbox).
func textAt(c *v3, conv string, seq int64) protocol.Message {
	c.t.Helper()
	for {
		m := nextText(c)
		if m.Conv == conv && m.Seq == seq {
			return m
		}
		if m.Conv == conv && m.Seq > seq {
			c.t.Fatalf("%s/%s: got seq %d of %s before %d", c.user, c.device, m.Seq, conv, seq)
		}
	}
}

func TestClusterCrossNodeDelivery(t *testing.T) {
	_, nodes := startCluster(t, 3)
	users(t, nodes[0], "alice", "bob", "carol")
	alice := dialV3(t, nodes[0], "alice", "a1", "pw-alice", v3Options{})
	bobPhone := dialV3(t, nodes[1], "bob", "phone", "pw-bob", v3Options{})
	bobLaptop := dialV3(t, nodes[2], "bob", "laptop", "pw-bob", v3Options{})
	carol := dialV3(t, nodes[2], "carol", "c1", "pw-carol", v3Options{})

	// 1:1 across nodes, to both of bob's devices on two other nodes.
	sent := alice.send(protocol.Request{To: "bob", CMID: "m1", Body: text("hello from n0")})
	for _, dev := range []*v3{bobPhone, bobLaptop} {
		m := nextText(dev)
		if m.Seq != sent.Seq || bodyText(t, m) != "hello from n0" {
			t.Fatalf("%s got %+v, want seq %d", dev.device, m, sent.Seq)
		}
	}
	// The PUBACKs on n1 and n2 advanced bob's cursors; the delivered
	// receipt comes back to alice on n0.
	for {
		ev := alice.next(protocol.EvReceipt)
		if ev.Receipt.User == "bob" && ev.Receipt.Delivered >= sent.Seq {
			break
		}
	}
	// And back: bob's reply from n1 reaches alice on n0 and bob's laptop.
	reply := bobPhone.send(protocol.Request{Conv: sent.Conv, CMID: "r1", Body: text("hi alice")})
	for _, dev := range []*v3{alice, bobLaptop} {
		if m := textAt(dev, sent.Conv, reply.Seq); bodyText(t, m) != "hi alice" {
			t.Fatalf("%s/%s got %+v", dev.user, dev.device, m)
		}
	}

	// A group with members on all three nodes.
	if !alice.request(protocol.OpGroupCreate, protocol.Request{Title: "trio", Members: []string{"bob", "carol"}}) {
		t.Fatal("group create: no PUBACK")
	}
	ev := alice.next(protocol.EvConversation, protocol.EvError)
	if ev.Type != protocol.EvConversation {
		t.Fatalf("group create: %+v", ev.Error)
	}
	group := ev.Conv.ID
	g1 := alice.send(protocol.Request{Conv: group, CMID: "g1", Body: text("group hello")})
	for _, dev := range []*v3{bobPhone, bobLaptop, carol} {
		textAt(dev, group, g1.Seq)
	}
	g2 := carol.send(protocol.Request{Conv: group, CMID: "g2", Body: text("carol here")})
	for _, dev := range []*v3{alice, bobPhone, bobLaptop} {
		textAt(dev, group, g2.Seq)
	}
}

// askPresence asks for user's presence and returns the reply; presence
// events pushed meanwhile stay queued for later calls.
func askPresence(c *v3, user string) protocol.Presence {
	c.t.Helper()
	if !c.request(protocol.OpPresence, protocol.Request{ID: "p", Users: []string{user}}) {
		c.t.Fatal("presence: no PUBACK")
	}
	var pushed []protocol.Event
	defer func() { c.held = append(c.held, pushed...) }()
	for {
		ev := c.next(protocol.EvPresence, protocol.EvError)
		if ev.Type == protocol.EvError {
			c.t.Fatalf("presence: %+v", ev.Error)
		}
		if ev.Op == protocol.OpPresence && len(ev.Presence) == 1 {
			return ev.Presence[0]
		}
		pushed = append(pushed, ev)
	}
}

// noOffline fails if a presence event saying user went offline arrives
// within d (or is already queued); other events stay queued.
func noOffline(c *v3, user string, d time.Duration) {
	c.t.Helper()
	check := func(ev protocol.Event) {
		if ev.Type == protocol.EvPresence && ev.Op == "" {
			for _, p := range ev.Presence {
				if p.User == user && !p.Online {
					c.t.Fatalf("%s/%s: unexpected offline event for %s: %+v", c.user, c.device, user, p)
				}
			}
		}
	}
	for _, ev := range c.held {
		check(ev)
	}
	deadline := time.After(d)
	for {
		select {
		case ev := <-c.events:
			check(ev)
			c.held = append(c.held, ev)
		case <-deadline:
			return
		}
	}
}

// nextPushedPresence returns the next presence event pushed about user.
func nextPushedPresence(c *v3, user string) protocol.Presence {
	c.t.Helper()
	for {
		ev := c.next(protocol.EvPresence)
		if ev.Op == "" && len(ev.Presence) == 1 && ev.Presence[0].User == user {
			return ev.Presence[0]
		}
	}
}

func TestClusterPresence(t *testing.T) {
	_, nodes := startCluster(t, 3)
	users(t, nodes[0], "alice", "bob")
	alice := dialV3(t, nodes[2], "alice", "a1", "pw-alice", v3Options{})
	phone := dialV3(t, nodes[0], "bob", "phone", "pw-bob", v3Options{})
	// Contacts: both have written in their direct conversation.
	s := alice.send(protocol.Request{To: "bob", CMID: "x1", Body: text("hi")})
	phone.send(protocol.Request{Conv: s.Conv, CMID: "y1", Body: text("hi")})

	laptop := dialV3(t, nodes[1], "bob", "laptop", "pw-bob", v3Options{})
	if p := askPresence(alice, "bob"); !p.Online {
		t.Fatalf("bob with two devices: %+v, want online", p)
	}
	// The phone leaves n0: bob is still online through the laptop on n1.
	phone.c.Disconnect(0)
	time.Sleep(300 * time.Millisecond)
	if p := askPresence(alice, "bob"); !p.Online {
		t.Fatalf("bob with the laptop left: %+v, want online", p)
	}
	// (bob's "online" from the phone's connect may still arrive: alice
	// became bob's contact around then, and transitions are handled
	// asynchronously. "offline" must not.)
	noOffline(alice, "bob", 500*time.Millisecond)
	// The laptop leaves n1: alice on n2 hears bob go offline.
	laptop.c.Disconnect(0)
	p := nextPushedPresence(alice, "bob")
	if p.Online || p.LastSeen == 0 {
		t.Fatalf("pushed presence after the last device left: %+v, want offline with last seen", p)
	}
	if p := askPresence(alice, "bob"); p.Online || p.LastSeen == 0 {
		t.Fatalf("presence after the last device left: %+v, want offline with last seen", p)
	}
	// Back on n2 (alice's node): alice on n2 hears bob come online.
	dialV3(t, nodes[2], "bob", "tablet", "pw-bob", v3Options{})
	if p := nextPushedPresence(alice, "bob"); !p.Online {
		t.Fatalf("pushed presence after reconnect: %+v, want online", p)
	}
}

// lb is a test TCP load balancer for one device: every connection goes to
// the first backend that accepts it, in the order given, the way a load
// balancer skips a dead node.
type lb struct {
	ln       net.Listener
	backends []string
	wg       sync.WaitGroup
}

func newLB(t *testing.T, backends ...*brokertest.Broker) *lb {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &lb{ln: ln}
	for _, b := range backends {
		l.backends = append(l.backends, b.MQTTAddr)
	}
	l.wg.Add(1)
	go l.serve()
	t.Cleanup(func() {
		ln.Close()
		l.wg.Wait()
	})
	return l
}

func (l *lb) url() string { return "mqtt://" + l.ln.Addr().String() }

func (l *lb) serve() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer c.Close()
			for _, addr := range l.backends {
				b, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					continue
				}
				done := make(chan struct{}, 2)
				go func() { io.Copy(b, c); b.Close(); done <- struct{}{} }()
				go func() { io.Copy(c, b); c.Close(); done <- struct{}{} }()
				<-done
				<-done
				return
			}
		}()
	}
}

// received counts what an SDK client's OnMessage got, per conversation and seq.
type received struct {
	mu   sync.Mutex
	seen map[string]map[int64]int
}

func (r *received) add(m protocol.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = make(map[string]map[int64]int)
	}
	if r.seen[m.Conv] == nil {
		r.seen[m.Conv] = make(map[int64]int)
	}
	r.seen[m.Conv][m.Seq]++
}

// missing returns the seqs of conv in want not received yet.
func (r *received) missing(conv string, want []int64) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int64
	for _, s := range want {
		if r.seen[conv][s] == 0 {
			out = append(out, s)
		}
	}
	return out
}

func (r *received) duplicates() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for conv, seqs := range r.seen {
		for s, n := range seqs {
			if n > 1 {
				out = append(out, fmt.Sprintf("%s/%d x%d", conv, s, n))
			}
		}
	}
	return out
}

func dialSDK(t *testing.T, url, user, device string, r *received) *msgr.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := msgr.Dial(ctx, msgr.Config{
		ServerURL: url,
		User:      user,
		Device:    device,
		Password:  "pw-" + user,
		KeepAlive: 2 * time.Second,
		OnMessage: func(m protocol.Message) {
			if r != nil {
				r.add(m)
			}
		},
	})
	if err != nil {
		t.Fatalf("dial %s/%s: %v", user, device, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitDelivered waits until every receiver has every seq of conv in want.
func waitDelivered(t *testing.T, conv string, want []int64, rs map[string]*received, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var missing []string
		for name, r := range rs {
			if m := r.missing(conv, want); len(m) > 0 {
				missing = append(missing, fmt.Sprintf("%s misses %d (first %v)", name, len(m), m[:min(5, len(m))]))
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, strings.Join(missing, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for name, r := range rs {
		if d := r.duplicates(); len(d) > 0 {
			t.Errorf("%s got messages more than once: %v", name, d)
		}
	}
}

func TestClusterNodeCrash(t *testing.T) {
	c, nodes := startCluster(t, 3)
	users(t, nodes[0], "s0", "s1", "s2", "rcv", "lonely")
	n0, n1, n2 := nodes[0], nodes[1], nodes[2]

	// Every device reaches the cluster through its own load balancer that
	// prefers its home node; n1 is the one that dies.
	rcvPhone, rcvLaptop := &received{}, &received{}
	dialSDK(t, newLB(t, n1, n2, n0).url(), "rcv", "phone", rcvPhone)
	dialSDK(t, newLB(t, n2, n0).url(), "rcv", "laptop", rcvLaptop)
	senders := []*msgr.Client{
		dialSDK(t, newLB(t, n0, n2).url(), "s0", "d", nil),
		dialSDK(t, newLB(t, n1, n2, n0).url(), "s1", "d", nil),
		dialSDK(t, newLB(t, n2, n0).url(), "s2", "d", nil),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	group, err := senders[0].CreateGroup(ctx, "crash", "s1", "s2", "rcv")
	if err != nil {
		t.Fatal(err)
	}
	// A user only on n1, a contact of s0: offline once n1 is reaped.
	lonely := dialV3(t, n1, "lonely", "d", "pw-lonely", v3Options{})
	sl, err := senders[0].SendTo(ctx, "lonely", "hi")
	if err != nil {
		t.Fatal(err)
	}
	lonely.send(protocol.Request{Conv: sl.Conv, CMID: "l1", Body: text("hi")})

	const perSender = 60
	var (
		mu    sync.Mutex
		acked []int64
		wg    sync.WaitGroup
		half  sync.WaitGroup
	)
	half.Add(len(senders))
	for i, s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perSender {
				if j == perSender/2 {
					half.Done()
				}
				sent, err := s.SendMessage(ctx, msgr.Outgoing{Conv: group.ID, CMID: fmt.Sprintf("s%d-%d", i, j), Text: fmt.Sprintf("m %d %d", i, j)})
				if err != nil {
					t.Errorf("sender %d message %d: %v", i, j, err)
					return
				}
				mu.Lock()
				acked = append(acked, sent.Seq)
				mu.Unlock()
			}
		}()
	}
	half.Wait()
	n1.Crash(t)
	wg.Wait()
	if t.Failed() {
		return
	}
	if len(acked) != len(senders)*perSender {
		t.Fatalf("%d messages acknowledged, want %d", len(acked), len(senders)*perSender)
	}
	waitDelivered(t, group.ID, acked, map[string]*received{"rcv/phone": rcvPhone, "rcv/laptop": rcvLaptop}, 30*time.Second)

	// n1's registry entries are reaped by a surviving node and lonely,
	// whose only device was there, is offline.
	rdb := redis.NewClient(mustRedisOptions(t, c.RedisURL))
	defer rdb.Close()
	deadline := time.Now().Add(5 * c.TTL)
	for {
		_, nodeErr := rdb.ZScore(ctx, c.Prefix+":nodes", "n1").Result()
		p, err := senders[0].Presence(ctx, "lonely")
		if err != nil {
			t.Fatal(err)
		}
		if nodeErr == redis.Nil && !p[0].Online {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n1 still registered (%v) or lonely still online (%+v)", nodeErr, p[0])
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n, err := rdb.Exists(ctx, c.Prefix+":{n:n1}:devices").Result(); err != nil || n != 0 {
		t.Fatalf("n1's device set still exists (%d, %v)", n, err)
	}
	// The survivors carry on.
	s, err := senders[2].Send(ctx, group.ID, "after the crash")
	if err != nil {
		t.Fatal(err)
	}
	waitDelivered(t, group.ID, []int64{s.Seq}, map[string]*received{"rcv/phone": rcvPhone, "rcv/laptop": rcvLaptop}, 10*time.Second)
}

func mustRedisOptions(t *testing.T, url string) *redis.Options {
	t.Helper()
	o, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// privateRedis is a redis-server of the test's own, which the test may
// stop and start again on the same port.
type privateRedis struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
}

func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	brokertest.RedisURL(t) // skip unless the test servers are there
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	r := &privateRedis{t: t, port: port, dir: t.TempDir()}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *privateRedis) url() string { return "redis://127.0.0.1:" + strconv.Itoa(r.port) + "/0" }

func (r *privateRedis) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(r.port),
		"--dir", r.dir, "--save", "", "--appendonly", "no")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	rdb := redis.NewClient(mustRedisOptions(r.t, r.url()))
	defer rdb.Close()
	for i := 0; ; i++ {
		if rdb.Ping(context.Background()).Err() == nil {
			return
		}
		if i > 100 {
			r.t.Fatal("private redis-server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop kills the server (SIGKILL: like a crash, and it keeps nothing).
func (r *privateRedis) stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// collectSeqs gathers the seqs of conv a v3 client receives as message
// events or in pushed sync pages.
func collectSeqs(c *v3, conv string, into map[int64]bool, d time.Duration) {
	deadline := time.After(d)
	for {
		select {
		case ev := <-c.events:
			if ev.Type == protocol.EvMessage && ev.Msg != nil && ev.Msg.Conv == conv {
				into[ev.Msg.Seq] = true
			}
			if ev.Type == protocol.EvSync {
				for _, m := range ev.Msgs {
					if m.Conv == conv {
						into[m.Seq] = true
					}
				}
			}
		case <-deadline:
			return
		}
	}
}

func TestClusterRedisRestart(t *testing.T) {
	rs := startPrivateRedis(t)
	_, nodes := startCluster(t, 2, func(c *brokertest.Cluster) { c.RedisURL = rs.url() })
	users(t, nodes[0], "alice", "bob", "carol")
	alice := dialV3(t, nodes[0], "alice", "a1", "pw-alice", v3Options{})
	bob := dialV3(t, nodes[1], "bob", "b1", "pw-bob", v3Options{})
	// carol, alice's contact, has her only device on n1.
	carol := dialV3(t, nodes[1], "carol", "c1", "pw-carol", v3Options{})
	cs := alice.send(protocol.Request{To: "carol", CMID: "to-carol", Body: text("hi")})
	carol.send(protocol.Request{Conv: cs.Conv, CMID: "to-alice", Body: text("hi")})
	carol.c.Disconnect(0)

	var sent []int64
	send := func(n int, tag string) {
		t.Helper()
		for i := range n {
			s := alice.send(protocol.Request{To: "bob", CMID: fmt.Sprintf("%s-%d", tag, i), Body: text(tag)})
			sent = append(sent, s.Seq)
		}
	}
	send(10, "before")
	rs.stop()
	// Sends keep working (PostgreSQL is fine); forwards to n1 cannot.
	send(10, "during")
	time.Sleep(500 * time.Millisecond)
	rs.start()
	send(10, "after")

	got := map[int64]bool{}
	conv := ""
	for conv == "" {
		// All of sent are in alice and bob's direct conversation.
		if ev := alice.next(protocol.EvMessage); ev.Msg.Conv != cs.Conv {
			conv = ev.Msg.Conv
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		collectSeqs(bob, conv, got, 200*time.Millisecond)
		var missing []int64
		for _, s := range sent {
			if !got[s] {
				missing = append(missing, s)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob misses seqs %v of %v", missing, sent)
		}
	}
	// The nodes recovered by themselves: live delivery across nodes works
	// again.
	s := alice.send(protocol.Request{To: "bob", CMID: "final", Body: text("final")})
	deadline = time.Now().Add(10 * time.Second)
	for !got[s.Seq] {
		if time.Now().After(deadline) {
			t.Fatalf("bob did not get seq %d after recovery", s.Seq)
		}
		collectSeqs(bob, conv, got, 200*time.Millisecond)
	}
}

// cutProxy forwards TCP connections to target until cut: then it drops
// every connection and refuses new ones until restored, the way a network
// partition between one node and Redis looks to the node.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.setDown(true)
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *cutProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil || !p.track(c, b) {
			c.Close()
			if b != nil {
				b.Close()
			}
			continue
		}
		p.wg.Add(2)
		go func() { defer p.wg.Done(); io.Copy(b, c); b.Close() }()
		go func() { defer p.wg.Done(); io.Copy(c, b); c.Close() }()
	}
}

// TestClusterRedisPartition cuts one node off Redis while Redis and the
// other node carry on: forwards to the cut node are lost (Redis accepts
// them with nobody subscribed), and a device leaving the cut node cannot be
// removed from the registry. Once the node reaches Redis again it must
// resync its devices and remove the departed one.
func TestClusterRedisPartition(t *testing.T) {
	c := brokertest.NewCluster(t)
	proxy := newCutProxy(t, strings.TrimSuffix(strings.TrimPrefix(c.RedisURL, "redis://"), "/0"))
	n0 := brokertest.Start(t, c.Node("n0"))
	n1 := brokertest.Start(t, c.Node("n1"), brokertest.WithConfig(func(cfg *broker.Config) {
		cfg.RedisURL = "redis://" + proxy.addr() + "/0"
	}))
	users(t, n0, "alice", "bob", "carol")
	alice := dialV3(t, n0, "alice", "a1", "pw-alice", v3Options{})
	bob := dialV3(t, n1, "bob", "b1", "pw-bob", v3Options{})
	carol := dialV3(t, n1, "carol", "c1", "pw-carol", v3Options{})
	cs := alice.send(protocol.Request{To: "carol", CMID: "to-carol", Body: text("hi")})
	carol.send(protocol.Request{Conv: cs.Conv, CMID: "to-alice", Body: text("hi")})
	if !askPresence(alice, "carol").Online {
		t.Fatal("carol connected, but not online")
	}
	first := alice.send(protocol.Request{To: "bob", CMID: "b0", Body: text("before")})
	got := map[int64]bool{}
	for !got[first.Seq] {
		collectSeqs(bob, first.Conv, got, 200*time.Millisecond)
	}

	proxy.setDown(true)
	time.Sleep(300 * time.Millisecond)
	carol.c.Disconnect(0)
	var sent []int64
	for i := range 5 {
		s := alice.send(protocol.Request{To: "bob", CMID: fmt.Sprintf("b%d", i+1), Body: text("during")})
		sent = append(sent, s.Seq)
	}
	time.Sleep(500 * time.Millisecond)
	proxy.setDown(false)

	deadline := time.Now().Add(20 * time.Second)
	for {
		collectSeqs(bob, first.Conv, got, 200*time.Millisecond)
		var missing []int64
		for _, s := range sent {
			if !got[s] {
				missing = append(missing, s)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob misses seqs %v of %v after the partition", missing, sent)
		}
	}
	deadline = time.Now().Add(15 * time.Second)
	for askPresence(alice, "carol").Online {
		if time.Now().After(deadline) {
			t.Fatal("carol, gone during the partition, still online after it")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestClusterGracefulShutdown: a node that stops cleanly leaves nothing in
// Redis, and its users go offline at once.
func TestClusterGracefulShutdown(t *testing.T) {
	c, nodes := startCluster(t, 2)
	users(t, nodes[0], "alice", "bob")
	alice := dialV3(t, nodes[0], "alice", "a1", "pw-alice", v3Options{})
	bob := dialV3(t, nodes[1], "bob", "b1", "pw-bob", v3Options{})
	s := alice.send(protocol.Request{To: "bob", CMID: "x", Body: text("hi")})
	bob.send(protocol.Request{Conv: s.Conv, CMID: "y", Body: text("hi")})

	nodes[1].Stop(t)
	if p := nextPushedPresence(alice, "bob"); p.Online {
		t.Fatalf("after bob's node stopped: %+v, want offline", p)
	}
	rdb := redis.NewClient(mustRedisOptions(t, c.RedisURL))
	defer rdb.Close()
	ctx := context.Background()
	if _, err := rdb.ZScore(ctx, c.Prefix+":nodes", "n1").Result(); err != redis.Nil {
		t.Fatalf("n1 still in the node set (%v)", err)
	}
	for _, key := range []string{c.Prefix + ":{n:n1}:devices", c.Prefix + ":{u:bob}"} {
		if n, err := rdb.Exists(ctx, key).Result(); err != nil || n != 0 {
			t.Fatalf("%s still exists (%d, %v)", key, n, err)
		}
	}
	if _, err := rdb.ZScore(ctx, c.Prefix+":nodes", "n0").Result(); err != nil {
		t.Fatalf("n0 left the node set: %v", err)
	}
}
