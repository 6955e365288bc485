// Package cluster lets several msgrd nodes serve one deployment through
// Redis: a registry of which node holds which device (expiring entries
// refreshed by their node), a heartbeat per node, and a pub/sub channel per
// node over which inbox events for devices on other nodes are forwarded.
// PostgreSQL stays the source of truth: whenever a forward may have been
// lost, the devices concerned are nudged to sync from the store. Node
// implements chat.Cluster.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Local is what the cluster asks of this node's broker.
type Local interface {
	// Deliver publishes payload to user's inbox on this node only.
	Deliver(user string, payload []byte, qos byte) error
	// Nudge pushes a sync page to a device connected here.
	Nudge(user, device string)
	// InvalidateMembers drops the cached member list of a conversation.
	InvalidateMembers(convID string)
	// Departed reports that user's last device was on a node that died.
	Departed(user string, at time.Time)
	// Kick disconnects this node's clients that selector names (see
	// Node.Kick), telling MQTT 5 clients reason.
	Kick(selector string, reason byte)
}

// Options configure a Node.
type Options struct {
	URL    string        // see NewClient
	Prefix string        // key and channel prefix; "msgr" by default
	NodeID string        // unique per running node; see DefaultNodeID
	TTL    time.Duration // registry entries expire this long after their last refresh
	Logger *slog.Logger
}

// Errors returned by Node.
var (
	ErrBadNodeID = errors.New("invalid node id")
	// ErrDegraded means Redis failed recently and the node has not
	// recovered yet; callers decide locally, and the node nudges its
	// devices to sync once Redis works again.
	ErrDegraded = errors.New("cluster registry degraded")
)

// DefaultTTL is the node heartbeat lifetime; nodes refresh every TTL/3.
const DefaultTTL = 15 * time.Second

// entryTTLFactor makes device entries live this many heartbeat TTLs. A
// dead node's entries are removed by reaping one heartbeat TTL after its
// death; their own expiry is only the fallback should reaping fail, and a
// long one keeps renewal cheap: each entry is renewed every third of it
// (every 200 s at the default TTL), not on every heartbeat.
const entryTTLFactor = 40

// opTimeout bounds one registry call or forward.
const opTimeout = 500 * time.Millisecond

// maxPending bounds the users remembered for a nudge after an outage;
// beyond it every node is asked to nudge all its devices.
const maxPending = 100_000

// Node is this process's membership in a cluster.
type Node struct {
	id       string
	k        keys
	rdb      redis.UniversalClient
	ttl      time.Duration // heartbeat
	entryTTL time.Duration // device entries
	log      *slog.Logger
	local    Local
	gaps     *gapTracker

	mu         sync.Mutex
	devices    map[string]map[string]struct{} // user -> devices attached here
	pending    map[string]struct{}            // users whose forwards may be lost
	undetached map[string]struct{}            // USER/DEVICE left while Redis failed
	pendingAll bool
	fails      uint64 // Redis failures so far
	recovered  uint64 // fails at the last recovery: degraded while they differ
	subscribed bool   // subscription confirmed since the last failure

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	wake   chan struct{}

	renewed time.Time // last renewal of the device entries; refresh loop only
}

func validNodeRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

// ValidateNodeID checks a node id: 1-64 of A-Z a-z 0-9 . _ -
func ValidateNodeID(id string) error {
	if id == "" || len(id) > 64 || strings.IndexFunc(id, func(r rune) bool { return !validNodeRune(r) }) >= 0 {
		return fmt.Errorf("%w: %q (1-64 characters of A-Z a-z 0-9 . _ -)", ErrBadNodeID, id)
	}
	return nil
}

// New connects to Redis; Start begins serving. It fails when Redis is
// unreachable: a node must not start without its registry.
func New(ctx context.Context, opts Options) (*Node, error) {
	if err := ValidateNodeID(opts.NodeID); err != nil {
		return nil, err
	}
	if opts.Prefix == "" {
		opts.Prefix = "msgr"
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	rdb, err := NewClient(opts.URL)
	if err != nil {
		return nil, err
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis %s: %w", redact(opts.URL), err)
	}
	return &Node{
		id:         opts.NodeID,
		k:          keys{prefix: opts.Prefix},
		rdb:        rdb,
		ttl:        opts.TTL,
		entryTTL:   entryTTLFactor * opts.TTL,
		log:        opts.Logger.With("node", opts.NodeID),
		gaps:       newGapTracker(),
		devices:    make(map[string]map[string]struct{}),
		pending:    make(map[string]struct{}),
		undetached: make(map[string]struct{}),
		wake:       make(chan struct{}, 1),
	}, nil
}

// ID is the node's id.
func (n *Node) ID() string { return n.id }

// Start registers the node and starts its heartbeat and subscription.
func (n *Node) Start(ctx context.Context, local Local) error {
	n.local = local
	// A node restarted under the same id finds its previous life's
	// entries: they are stale (no device is connected yet), so they go the
	// way a dead node's do.
	if err := n.reapDevices(ctx, n.id, time.Now()); err != nil {
		return fmt.Errorf("clear previous entries: %w", err)
	}
	if err := n.heartbeat(ctx); err != nil {
		return fmt.Errorf("register node: %w", err)
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.wg.Add(2)
	go n.refreshLoop()
	go n.subscribeLoop()
	return nil
}

// Close stops the node and removes its registry entries (its devices
// have been detached by their disconnects already; any left are removed).
func (n *Node) Close(ctx context.Context) error {
	n.stop()
	// A Redis that does not answer must not hold up shutdown: whatever is
	// not removed now expires or is reaped.
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n.mu.Lock()
	var left []string
	for u, ds := range n.devices {
		for d := range ds {
			left = append(left, u+"/"+d)
		}
	}
	n.mu.Unlock()
	var errs []error
	for _, ud := range left {
		u, d, _ := strings.Cut(ud, "/")
		if err := detachScript.Run(ctx, n.rdb, []string{n.k.user(u)}, n.id+"|"+d).Err(); err != nil {
			errs = append(errs, err)
			break
		}
	}
	errs = append(errs, n.rdb.ZRem(ctx, n.k.nodes(), n.id).Err(), n.rdb.Del(ctx, n.k.nodeDevices(n.id)).Err())
	errs = append(errs, n.rdb.Close())
	return errors.Join(errs...)
}

// Crash stops the node the way a crash would: no registry cleanup, the
// Redis connections dropped. Its entries expire and other nodes reap them.
// For tests.
func (n *Node) Crash() {
	n.stop()
	_ = n.rdb.Close()
}

func (n *Node) stop() {
	if n.cancel != nil {
		n.cancel()
	}
	n.wg.Wait()
}

// degraded reports whether Redis failed since the last recovery.
func (n *Node) degraded() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.fails != n.recovered
}

// fail records a Redis failure: until the next recovery the node decides
// locally and remembers what it could not forward.
func (n *Node) fail(op string, err error) {
	n.mu.Lock()
	first := n.fails == n.recovered
	n.fails++
	n.mu.Unlock()
	if first {
		n.log.Warn("cluster: redis failure, degrading to local decisions and sync", "op", op, "error", err)
	}
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *Node) addPending(user string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.pending) >= maxPending {
		n.pendingAll = true
		clear(n.pending)
		return
	}
	if !n.pendingAll {
		n.pending[user] = struct{}{}
	}
}

func member(node, device string) string { return node + "|" + device }

// addUndetached remembers a device whose entry could not be removed, so
// that recovery removes it instead of leaving it until it expires.
func (n *Node) addUndetached(user, device string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.undetached) < maxPending {
		n.undetached[user+"/"+device] = struct{}{}
	}
}

// detachLeftovers removes the entries of devices that left while Redis
// failed, unless they came back meanwhile; a user whose last entry it was
// is reported offline (the local decision could not reach other nodes).
func (n *Node) detachLeftovers(ctx context.Context) error {
	n.mu.Lock()
	left := n.undetached
	n.undetached = make(map[string]struct{})
	var back []string
	for ud := range left {
		u, d, _ := strings.Cut(ud, "/")
		if _, ok := n.devices[u][d]; ok {
			back = append(back, ud)
		}
	}
	for _, ud := range back {
		delete(left, ud)
	}
	n.mu.Unlock()
	for ud := range left {
		u, d, _ := strings.Cut(ud, "/")
		v, err := detachScript.Run(ctx, n.rdb, []string{n.k.user(u)}, member(n.id, d)).Int64Slice()
		if err != nil {
			n.mu.Lock()
			for ud := range left {
				n.undetached[ud] = struct{}{}
			}
			n.mu.Unlock()
			return err
		}
		delete(left, ud)
		_ = n.rdb.SRem(ctx, n.k.nodeDevices(n.id), ud).Err()
		if len(v) == 2 && v[0] == 1 && v[1] == 0 {
			n.local.Departed(u, time.Now())
		}
	}
	return nil
}

// Attach implements chat.Cluster.
func (n *Node) Attach(ctx context.Context, user, device string) (bool, error) {
	n.mu.Lock()
	ds := n.devices[user]
	if ds == nil {
		ds = make(map[string]struct{})
		n.devices[user] = ds
	}
	ds[device] = struct{}{}
	n.mu.Unlock()
	if n.degraded() {
		// Registered on recovery, and nudged to sync then.
		return false, ErrDegraded
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	pipe := n.rdb.Pipeline()
	res := attachScript.Eval(ctx, pipe, []string{n.k.user(user)}, member(n.id, device), n.entryTTL.Milliseconds())
	pipe.SAdd(ctx, n.k.nodeDevices(n.id), user+"/"+device)
	if _, err := pipe.Exec(ctx); err != nil {
		n.fail("attach", err)
		return false, err
	}
	v, err := res.Int64Slice()
	if err != nil || len(v) != 2 {
		n.fail("attach", fmt.Errorf("unexpected reply %v: %w", res.Val(), err))
		return false, err
	}
	return v[0] == 1 && v[1] == 1, nil
}

// Detach implements chat.Cluster.
func (n *Node) Detach(ctx context.Context, user, device string) (bool, error) {
	n.mu.Lock()
	gone := false
	if ds := n.devices[user]; ds != nil {
		delete(ds, device)
		if len(ds) == 0 {
			delete(n.devices, user)
			gone = true
		}
	}
	n.mu.Unlock()
	if gone {
		n.gaps.forget(user)
	}
	if n.degraded() {
		n.addUndetached(user, device)
		return false, ErrDegraded
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	pipe := n.rdb.Pipeline()
	res := detachScript.Eval(ctx, pipe, []string{n.k.user(user)}, member(n.id, device))
	pipe.SRem(ctx, n.k.nodeDevices(n.id), user+"/"+device)
	if _, err := pipe.Exec(ctx); err != nil {
		n.fail("detach", err)
		n.addUndetached(user, device)
		return false, err
	}
	v, err := res.Int64Slice()
	if err != nil || len(v) != 2 {
		n.fail("detach", fmt.Errorf("unexpected reply %v: %w", res.Val(), err))
		return false, err
	}
	return v[1] == 0, nil
}

// Online implements chat.Cluster.
func (n *Node) Online(ctx context.Context, user string) (bool, error) {
	if n.degraded() {
		return false, ErrDegraded
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	c, err := onlineScript.Run(ctx, n.rdb, []string{n.k.user(user)}).Int64()
	if err != nil {
		n.fail("online", err)
		return false, err
	}
	return c > 0, nil
}

func (n *Node) localDevices(user string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	ds := n.devices[user]
	out := make([]string, 0, len(ds))
	for d := range ds {
		out = append(out, d)
	}
	return out
}

func (n *Node) hasLocal(user string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.devices[user]) > 0
}

// Forward implements chat.Cluster: one round trip looks up the user's
// nodes and publishes to each. A forward that fails is remembered and
// replaced by a sync nudge once Redis works again; QoS 0 events (presence,
// typing) are not stored and are simply lost.
func (n *Node) Forward(user string, payload []byte, qos byte) {
	if qos == 1 && n.hasLocal(user) {
		n.observe(user, payload)
	}
	if n.degraded() {
		if qos == 1 {
			n.addPending(user)
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	env := envelope{kind: kindEvent, qos: qos, name: user, payload: payload}.encode()
	if err := routeScript.Run(ctx, n.rdb, []string{n.k.user(user)}, n.id, env, n.k.fwdPrefix()).Err(); err != nil && !errors.Is(err, redis.Nil) {
		n.fail("forward", err)
		if qos == 1 {
			n.addPending(user)
		}
	}
}

// MembersChanged implements chat.Cluster. A lost invalidation leaves other
// nodes' caches stale for at most their TTL (chat.Config.MemberCache).
func (n *Node) MembersChanged(convID string) {
	if n.degraded() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := n.rdb.Publish(ctx, n.k.bcast(), envelope{kind: kindInvalid, name: convID}.encode()).Err(); err != nil {
		n.fail("invalidate", err)
	}
}

// Kick asks every node, this one included, to disconnect the clients
// selector names, with MQTT reason code reason: device revocation,
// disabled users and bans reach devices wherever they are connected. The
// selector is opaque here (the broker defines it). A kick lost while Redis
// fails is not retried: the node that lost it refuses the device at its
// next connect or token use anyway.
func (n *Node) Kick(selector string, reason byte) error {
	if n.degraded() {
		return ErrDegraded
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	env := envelope{kind: kindKick, name: selector, payload: []byte{reason}}.encode()
	if err := n.rdb.Publish(ctx, n.k.bcast(), env).Err(); err != nil {
		n.fail("kick", err)
		return fmt.Errorf("cluster: kick: %w", err)
	}
	return nil
}

// observe feeds a QoS 1 inbox event for a user with devices here to the
// gap tracker; a gap that is not filled soon nudges the user's devices.
func (n *Node) observe(user string, payload []byte) {
	conv, seq, ok := messageRef(payload)
	if !ok {
		return
	}
	n.gaps.observe(user, conv, seq, time.Now())
}

// handle processes one envelope from this node's or the broadcast channel.
func (n *Node) handle(payload []byte) {
	e, err := decodeEnvelope(payload)
	if err != nil {
		n.log.Warn("cluster: dropping malformed envelope", "error", err)
		return
	}
	switch e.kind {
	case kindEvent:
		if !n.hasLocal(e.name) {
			return // the device left; it syncs wherever it reconnects
		}
		if err := n.local.Deliver(e.name, e.payload, e.qos); err != nil {
			n.log.Warn("cluster: deliver forwarded event", "user", e.name, "error", err)
		}
		if e.qos == 1 {
			n.observe(e.name, e.payload)
		}
	case kindNudge:
		n.nudgeUser(e.name)
	case kindNudgeAll:
		n.nudgeAll()
	case kindInvalid:
		n.local.InvalidateMembers(e.name)
	case kindKick:
		if len(e.payload) == 1 {
			n.local.Kick(e.name, e.payload[0])
		}
	}
}

func (n *Node) nudgeUser(user string) {
	for _, d := range n.localDevices(user) {
		n.local.Nudge(user, d)
	}
}

func (n *Node) nudgeAll() {
	n.mu.Lock()
	var all [][2]string
	for u, ds := range n.devices {
		for d := range ds {
			all = append(all, [2]string{u, d})
		}
	}
	n.mu.Unlock()
	for _, ud := range all {
		n.local.Nudge(ud[0], ud[1])
	}
}

// interval is the refresh period: TTL/3, faster while degraded.
func (n *Node) interval() time.Duration {
	if n.degraded() {
		return min(n.ttl/3, 250*time.Millisecond)
	}
	return n.ttl / 3
}

func (n *Node) refreshLoop() {
	defer n.wg.Done()
	t := time.NewTimer(n.interval())
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.wake:
		case <-t.C:
		}
		n.refresh()
		n.checkGaps()
		t.Reset(n.interval())
	}
}

// refresh renews the heartbeat and this node's entries, reaps dead nodes,
// and recovers from an earlier failure.
func (n *Node) refresh() {
	n.mu.Lock()
	fails, wasDegraded, sub := n.fails, n.fails != n.recovered, n.subscribed
	n.mu.Unlock()
	ctx, cancel := context.WithTimeout(n.ctx, max(n.ttl/3, time.Second))
	defer cancel()
	res, err := heartbeatScript.Run(ctx, n.rdb, []string{n.k.nodes()}, n.id, n.ttl.Milliseconds()).Slice()
	if err != nil || len(res) < 2 {
		n.fail("heartbeat", fmt.Errorf("reply %v: %w", res, err))
		return
	}
	now, _ := res[0].(int64)
	expired, _ := res[1].(int64)
	// An expired heartbeat means other nodes may have reaped this node's
	// entries: re-add them all, as after a failure.
	full := wasDegraded || expired == 1
	if full || time.Since(n.renewed) >= n.entryTTL/3 {
		if err := n.renew(ctx, now, full); err != nil {
			n.fail("refresh", err)
			return
		}
		n.renewed = time.Now()
	}
	for i := 2; i+1 < len(res); i += 2 {
		dead, _ := res[i].(string)
		score, _ := strconv.ParseInt(fmt.Sprint(res[i+1]), 10, 64)
		if dead != "" && dead != n.id {
			if err := n.reap(ctx, dead, time.UnixMilli(score-n.ttl.Milliseconds())); err != nil {
				n.fail("reap", err)
				return
			}
		}
	}
	if (wasDegraded && sub) || expired == 1 {
		n.recover(ctx, fails)
	}
}

// renew refreshes every device entry of this node; full re-adds entries
// that vanished (Redis restarted empty, or this node was reaped), else
// only existing ones are extended, so that a device detaching meanwhile is
// not brought back.
func (n *Node) renew(ctx context.Context, now int64, full bool) error {
	n.mu.Lock()
	var all [][2]string
	for u, ds := range n.devices {
		for d := range ds {
			all = append(all, [2]string{u, d})
		}
	}
	n.mu.Unlock()
	expiry := float64(now + n.entryTTL.Milliseconds())
	const chunk = 500
	for start := 0; start < len(all); start += chunk {
		pipe := n.rdb.Pipeline()
		for _, ud := range all[start:min(start+chunk, len(all))] {
			z := redis.Z{Score: expiry, Member: member(n.id, ud[1])}
			if full {
				pipe.ZAdd(ctx, n.k.user(ud[0]), z)
				pipe.SAdd(ctx, n.k.nodeDevices(n.id), ud[0]+"/"+ud[1])
			} else {
				pipe.ZAddXX(ctx, n.k.user(ud[0]), z)
			}
			pipe.PExpire(ctx, n.k.user(ud[0]), 2*n.entryTTL)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
	}
	// The device set outlives the heartbeat long enough to be reaped.
	return n.rdb.PExpire(ctx, n.k.nodeDevices(n.id), 2*n.entryTTL).Err()
}

// reap removes a dead node's entries; the node that removes it from the
// node set does the work, so it is done once. A user whose last entry it
// was goes offline at the dead node's last heartbeat.
func (n *Node) reap(ctx context.Context, dead string, at time.Time) error {
	removed, err := n.rdb.ZRem(ctx, n.k.nodes(), dead).Result()
	if err != nil || removed == 0 {
		return err
	}
	return n.reapDevices(ctx, dead, at)
}

// reapDevices removes node's entries listed in its device set and then
// the set.
func (n *Node) reapDevices(ctx context.Context, dead string, at time.Time) error {
	devs, err := n.rdb.SMembers(ctx, n.k.nodeDevices(dead)).Result()
	if err != nil {
		return err
	}
	if len(devs) > 0 {
		n.log.Info("cluster: removing a dead node's entries", "dead", dead, "devices", len(devs))
	}
	for _, ud := range devs {
		u, d, ok := strings.Cut(ud, "/")
		if !ok {
			continue
		}
		v, err := detachScript.Run(ctx, n.rdb, []string{n.k.user(u)}, member(dead, d)).Int64Slice()
		if err != nil {
			return err
		}
		if len(v) == 2 && v[0] == 1 && v[1] == 0 {
			n.local.Departed(u, at)
		}
	}
	return n.rdb.Del(ctx, n.k.nodeDevices(dead)).Err()
}

// recover runs once Redis works again after a failure: this node's devices
// sync (forwards to them may have been lost, and they were unroutable
// while unregistered), and the users whose forwards this node could not
// send are nudged wherever they are.
func (n *Node) recover(ctx context.Context, fails uint64) {
	n.mu.Lock()
	pending, all := n.pending, n.pendingAll
	n.pending, n.pendingAll = make(map[string]struct{}), false
	n.mu.Unlock()
	err := n.detachLeftovers(ctx)
	if err != nil {
		// Keep the nudges for the next attempt.
	} else if all {
		err = n.rdb.Publish(ctx, n.k.bcast(), envelope{kind: kindNudgeAll}.encode()).Err()
	} else {
		for u := range pending {
			env := envelope{kind: kindNudge, name: u}.encode()
			if err = routeScript.Run(ctx, n.rdb, []string{n.k.user(u)}, n.id, env, n.k.fwdPrefix()).Err(); err != nil && !errors.Is(err, redis.Nil) {
				break
			}
			err = nil
		}
	}
	if err != nil {
		n.mu.Lock()
		n.pendingAll = n.pendingAll || all
		for u := range pending {
			n.pending[u] = struct{}{}
		}
		n.mu.Unlock()
		n.fail("recover", err)
		return
	}
	n.nudgeAll()
	n.mu.Lock()
	if n.fails == fails {
		n.recovered = fails
	}
	n.mu.Unlock()
	n.log.Info("cluster: redis recovered, devices nudged to sync", "pending_users", len(pending), "all", all)
}

func (n *Node) heartbeat(ctx context.Context) error {
	return heartbeatScript.Run(ctx, n.rdb, []string{n.k.nodes()}, n.id, n.ttl.Milliseconds()).Err()
}

func (n *Node) setSubscribed(v bool) {
	n.mu.Lock()
	n.subscribed = v
	n.mu.Unlock()
}

// subscribeLoop receives this node's envelopes. Any failure of the
// subscription may have lost envelopes: it counts as a Redis failure, so
// the node recovers (and nudges its devices) once resubscribed.
func (n *Node) subscribeLoop() {
	defer n.wg.Done()
	for n.ctx.Err() == nil {
		n.receive()
		if n.ctx.Err() != nil {
			return
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (n *Node) receive() {
	ps := n.rdb.Subscribe(n.ctx, n.k.channel(n.id), n.k.bcast())
	defer ps.Close()
	pinged := false
	for {
		m, err := ps.ReceiveTimeout(n.ctx, n.ttl/3)
		if n.ctx.Err() != nil {
			return
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && !pinged {
			// Quiet channel: make sure the connection is alive.
			pinged = true
			if err := ps.Ping(n.ctx); err == nil {
				continue
			}
		}
		if err != nil {
			n.setSubscribed(false)
			n.fail("subscribe", err)
			return
		}
		pinged = false
		switch m := m.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && m.Count == 2 {
				n.setSubscribed(true)
				select {
				case n.wake <- struct{}{}:
				default:
				}
			}
		case *redis.Message:
			n.handle([]byte(m.Payload))
		}
	}
}
