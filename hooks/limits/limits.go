// Package limits is the mochi hook that enforces msgr's rate and abuse
// limits: CONNECTs per IP address, failed logins per user and per address
// (exponential backoff), connections per user, subscriptions per client,
// and chat commands and messages per user. Every refusal is a protocol-level
// answer (a CONNACK, PUBACK or SUBACK reason code, and an error event where
// the client has a device topic) and is counted through Observer.
//
// Add the hook before the authentication hook, and wrap the authentication
// hook with WrapAuth: the limits need the outcome of each login.
package limits

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/time/rate"

	"github.com/msgrhq/msgr/hooks/auth"
	"github.com/msgrhq/msgr/protocol"
)

// Names of the limits, as reported to Observer.LimitHit.
const (
	LimitConnectionRate = "connection_rate"
	LimitLogin          = "login_throttle"
	LimitUserConns      = "connections_per_user"
	LimitSubscriptions  = "subscriptions"
	LimitCommandRate    = "command_rate"
	LimitMessageRate    = "message_rate"
)

// Config holds the limits. A zero rate or count disables that limit.
type Config struct {
	MessageRate  float64 // send commands per second per user (all devices)
	MessageBurst int
	CommandRate  float64 // commands of any kind per second per user
	CommandBurst int
	ConnRate     float64 // CONNECT packets per second per IP address (IPv6: per /64)
	ConnBurst    int

	LoginFailuresUser int           // failed logins of a user before backoff starts
	LoginFailuresIP   int           // failed logins from an address before backoff starts
	LoginBackoff      time.Duration // first lockout; doubles with every further failure
	LoginBackoffMax   time.Duration // longest lockout
	LoginForget       time.Duration // failures are forgotten after this long without another

	MaxConnsPerUser  int // simultaneous connections (distinct client ids) per user
	MaxSubscriptions int // subscriptions per client

	MaxEntries int // per-key state kept per limit; idle entries expire
}

// DefaultConfig returns the defaults documented in docs/SECURITY.md.
func DefaultConfig() Config {
	return Config{
		MessageRate:       20,
		MessageBurst:      100,
		CommandRate:       100,
		CommandBurst:      500,
		ConnRate:          20,
		ConnBurst:         200,
		LoginFailuresUser: 5,
		LoginFailuresIP:   20,
		LoginBackoff:      time.Second,
		LoginBackoffMax:   5 * time.Minute,
		LoginForget:       15 * time.Minute,
		MaxConnsPerUser:   32,
		MaxSubscriptions:  256,
		MaxEntries:        100_000,
	}
}

// Observer is told about every refusal (metrics.Metrics implements it).
type Observer interface {
	LimitHit(limit string)
	ConnectionRefused(reason string)
}

// Replier publishes an error event to a device (the broker's publisher).
type Replier interface {
	Reply(topic string, payload, correlation []byte) error
}

// ConnackSender writes a CONNACK (mqtt.Server.SendConnack).
type ConnackSender func(cl *mqtt.Client, reason packets.Code, present bool, props *packets.Properties) error

// Options configure the hook.
type Options struct {
	Config
	SendConnack ConnackSender
	Replies     Replier
	Observer    Observer
	Logger      *slog.Logger
	Now         func() time.Time
}

// Hook enforces the limits.
type Hook struct {
	mqtt.HookBase
	opts Options

	conns    *table[string, *rate.Limiter]
	commands *table[string, *rate.Limiter]
	messages *table[string, *rate.Limiter]
	userFail *table[string, failures]
	ipFail   *table[string, failures]

	mu     sync.Mutex
	online map[string]map[string]*mqtt.Client // user -> client id -> connection
}

type failures struct {
	n     int
	until time.Time // refused until then
}

type nopObserver struct{}

func (nopObserver) LimitHit(string)          {}
func (nopObserver) ConnectionRefused(string) {}

// New returns the limits hook.
func New(opts Options) *Hook {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultConfig().MaxEntries
	}
	n := opts.MaxEntries
	return &Hook{
		opts:     opts,
		conns:    newTable[string, *rate.Limiter](n),
		commands: newTable[string, *rate.Limiter](n),
		messages: newTable[string, *rate.Limiter](n),
		userFail: newTable[string, failures](n),
		ipFail:   newTable[string, failures](n),
		online:   make(map[string]map[string]*mqtt.Client),
	}
}

// ID implements mqtt.Hook.
func (h *Hook) ID() string { return "msgr-limits" }

// Provides implements mqtt.Hook.
func (h *Hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnDisconnect, mqtt.OnPublish, mqtt.OnSubscribe, mqtt.OnSubscribed:
		return true
	}
	return false
}

// Connection refusals. OnConnect's error closes the connection after the
// CONNACK written here; mochi writes no CONNACK of its own then.
var (
	errConnRate  = errors.New("limits: connection rate exceeded")
	errThrottled = errors.New("limits: login throttled after failed attempts")
	errUserConns = errors.New("limits: too many connections for this user")

	codeConnRate  = packets.Code{Code: packets.ErrConnectionRateExceeded.Code, Reason: "connection rate exceeded: slow down"}
	codeThrottled = packets.Code{Code: packets.ErrConnectionRateExceeded.Code, Reason: "too many failed logins: retry later"}
	codeUserConns = packets.Code{Code: packets.ErrQuotaExceeded.Code, Reason: "too many connections for this user"}
)

// OnConnect refuses a CONNECT over its address's connection rate, or of a
// user or from an address that is backing off after failed logins, before
// any password is checked.
func (h *Hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	now := h.opts.Now()
	ip := addrKey(cl.Net.Remote)
	if h.opts.ConnRate > 0 && !h.allow(h.conns, ip, now, h.opts.ConnRate, h.opts.ConnBurst) {
		return h.refuse(cl, LimitConnectionRate, codeConnRate, packets.Err3ServerUnavailable, errConnRate)
	}
	if h.throttled(h.ipFail, ip, now) || (len(pk.Connect.Username) > 0 && h.throttled(h.userFail, string(pk.Connect.Username), now)) {
		return h.refuse(cl, LimitLogin, codeThrottled, packets.Err3NotAuthorized, errThrottled)
	}
	return nil
}

func (h *Hook) refuse(cl *mqtt.Client, limit string, v5, v3 packets.Code, err error) error {
	h.opts.Observer.LimitHit(limit)
	h.opts.Observer.ConnectionRefused(limit)
	h.opts.Logger.Info("connect refused: limit", "limit", limit, "client", cl.ID, "remote", cl.Net.Remote)
	code := v5
	if cl.Properties.ProtocolVersion < 5 {
		code = v3
	}
	if serr := h.opts.SendConnack(cl, code, false, nil); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}

// allow takes one token from key's limiter.
func (h *Hook) allow(t *table[string, *rate.Limiter], key string, now time.Time, r float64, burst int) bool {
	burst = max(burst, 1)
	// A limiter idle for this long is full again: forgetting it is free.
	refill := time.Duration(float64(burst) / r * float64(time.Second))
	var ok bool
	t.do(key, now, func() *rate.Limiter { return rate.NewLimiter(rate.Limit(r), burst) }, func(l **rate.Limiter) time.Duration {
		ok = (*l).AllowN(now, 1)
		return refill
	})
	return ok
}

func (h *Hook) throttled(t *table[string, failures], key string, now time.Time) bool {
	var locked bool
	t.peek(key, now, func(f *failures) { locked = now.Before(f.until) })
	return locked
}

// failed records a failed login of key and starts its backoff once free
// failures are used up.
func (h *Hook) failed(t *table[string, failures], key string, now time.Time, free int) {
	if free <= 0 {
		return
	}
	t.do(key, now, func() failures { return failures{} }, func(f *failures) time.Duration {
		f.n++
		if over := f.n - free; over > 0 {
			d := h.opts.LoginBackoffMax
			if over <= 30 {
				d = min(h.opts.LoginBackoff<<(over-1), h.opts.LoginBackoffMax)
			}
			f.until = now.Add(d)
		}
		return max(h.opts.LoginForget, f.until.Sub(now))
	})
}

// LoginThrottled reports whether a login of user from remote (host:port)
// is to be refused unchecked because of earlier failures. For logins
// outside MQTT (HTTP /v1/login); report their outcome with LoginResult.
func (h *Hook) LoginThrottled(user, remote string) bool {
	now := h.opts.Now()
	if h.throttled(h.ipFail, addrKey(remote), now) || (user != "" && h.throttled(h.userFail, user, now)) {
		h.opts.Observer.LimitHit(LimitLogin)
		return true
	}
	return false
}

// LoginResult records the outcome of a login outside MQTT, as WrapAuth
// does for MQTT logins.
func (h *Hook) LoginResult(user, remote string, ok bool) {
	now := h.opts.Now()
	if ok {
		if user != "" {
			h.userFail.delete(user)
		}
		return
	}
	h.failed(h.ipFail, addrKey(remote), now, h.opts.LoginFailuresIP)
	if user != "" {
		h.failed(h.userFail, user, now, h.opts.LoginFailuresUser)
	}
}

// WrapAuth returns the authentication hook with login outcomes reported to
// the limits: a failure counts towards its user's and address's backoff, a
// success forgets its user's failures (not its address's, so that an
// attacker's own account cannot reset the address throttle), and a
// success is refused when the user has too many connections.
func (h *Hook) WrapAuth(inner mqtt.Hook) mqtt.Hook {
	return &authGuard{Hook: inner, l: h}
}

type authGuard struct {
	mqtt.Hook
	l *Hook
}

func (g *authGuard) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	h := g.l
	now := h.opts.Now()
	username := string(pk.Connect.Username)
	if !g.Hook.OnConnectAuthenticate(cl, pk) {
		h.opts.Observer.ConnectionRefused("not_authorized")
		h.failed(h.ipFail, addrKey(cl.Net.Remote), now, h.opts.LoginFailuresIP)
		if username != "" {
			h.failed(h.userFail, username, now, h.opts.LoginFailuresUser)
		}
		return false
	}
	if username == "" {
		return true
	}
	h.userFail.delete(username)
	if !h.register(username, cl) {
		// Refuse with our own CONNACK and close: mochi's "bad username or
		// password" CONNACK then finds the connection closed.
		_ = h.refuse(cl, LimitUserConns, codeUserConns, packets.Err3ServerUnavailable, errUserConns)
		cl.Stop(errUserConns)
		return false
	}
	return true
}

// register counts cl among its user's connections unless that would
// exceed the limit. A connection with the client id of one already counted
// is a takeover, not an extra connection.
func (h *Hook) register(user string, cl *mqtt.Client) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	conns := h.online[user]
	if conns == nil {
		conns = make(map[string]*mqtt.Client)
		h.online[user] = conns
	}
	if _, takeover := conns[cl.ID]; !takeover && h.opts.MaxConnsPerUser > 0 {
		for id, c := range conns {
			if c.Closed() { // ended without OnDisconnect (a failed CONNACK)
				delete(conns, id)
			}
		}
		if len(conns) >= h.opts.MaxConnsPerUser {
			return false
		}
	}
	conns[cl.ID] = cl
	return true
}

// OnDisconnect forgets the connection unless a takeover replaced it.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	user := string(cl.Properties.Username)
	if user == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if conns := h.online[user]; conns != nil && conns[cl.ID] == cl {
		delete(conns, cl.ID)
		if len(conns) == 0 {
			delete(h.online, user)
		}
	}
}

// OnPublish applies the per-user command and message rates to chat
// commands. A refused command is not executed and not acknowledged as
// done: MQTT 5 QoS 1 gets PUBACK 0x96 (message rate too high), every
// client gets an error event with code rate_limited on its device topic,
// and MQTT 3.1.1 gets no PUBACK at all (it has no refusal code), so nothing
// acknowledged is ever dropped.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || (h.opts.CommandRate <= 0 && h.opts.MessageRate <= 0) {
		return pk, nil
	}
	t := protocol.ParseTopic(pk.TopicName)
	if t.Kind != protocol.TopicCommand {
		return pk, nil
	}
	user, device, ok := auth.Identity(cl)
	if !ok || t.User != user {
		return pk, nil // the ACL and chat hooks refuse these
	}
	now := h.opts.Now()
	limit, what := "", ""
	switch {
	case h.opts.CommandRate > 0 && !h.allow(h.commands, user, now, h.opts.CommandRate, h.opts.CommandBurst):
		limit, what = LimitCommandRate, "commands"
	case t.Op == protocol.OpSend && h.opts.MessageRate > 0 && !h.allow(h.messages, user, now, h.opts.MessageRate, h.opts.MessageBurst):
		limit, what = LimitMessageRate, "messages"
	default:
		return pk, nil
	}
	h.opts.Observer.LimitHit(limit)
	perSec := h.opts.CommandRate
	if limit == LimitMessageRate {
		perSec = h.opts.MessageRate
	}
	var req struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(pk.Payload, &req) != nil || len(req.ID) > protocol.MaxIDLen {
		req.ID = ""
	}
	h.reply(user, device, pk, protocol.Event{
		V: protocol.Version, Type: protocol.EvError, Op: t.Op, Req: req.ID,
		Error: protocol.Errorf(protocol.CodeRateLimited, "more than %g %s per second: slow down and retry", perSec, what),
	})
	if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos == 1 {
		return pk, packets.ErrMessageRateTooHigh // bare: mochi panics on a wrapped Code
	}
	return pk, packets.ErrRejectPacket
}

// reply publishes ev to the request's response topic when it is one of the
// user's device topics, else to the device's own topic (as hooks/chat).
func (h *Hook) reply(user, device string, pk packets.Packet, ev protocol.Event) {
	if h.opts.Replies == nil {
		return
	}
	topic := protocol.DeviceTopic(user, device)
	if rt := pk.Properties.ResponseTopic; rt != "" {
		if t := protocol.ParseTopic(rt); t.Kind == protocol.TopicDevice && t.User == user {
			topic = rt
		}
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		h.opts.Logger.Error("limits: encode error event", "error", err)
		return
	}
	if err := h.opts.Replies.Reply(topic, payload, pk.Properties.CorrelationData); err != nil {
		h.opts.Logger.Warn("limits: publish error event", "topic", topic, "error", err)
	}
}

// refusedFilter replaces a filter over the subscription limit: it is not a
// valid filter ('#' must be last), so mochi refuses it with SUBACK 0x8F
// (topic filter invalid; 0x80 for MQTT 3.1.1) and subscribes nothing.
const refusedFilter = "#/subscription-limit"

// OnSubscribe refuses the filters that would take a client over its
// subscription limit. Re-subscribing to a filter it already has is free.
func (h *Hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if h.opts.MaxSubscriptions <= 0 || cl.Net.Inline {
		return pk
	}
	n := cl.State.Subscriptions.Len()
	var refused int
	filters := make(packets.Subscriptions, len(pk.Filters))
	copy(filters, pk.Filters)
	for i, f := range filters {
		if _, ok := cl.State.Subscriptions.Get(f.Filter); ok {
			continue
		}
		if n >= h.opts.MaxSubscriptions {
			filters[i].Filter = refusedFilter
			refused++
			continue
		}
		n++
	}
	if refused == 0 {
		return pk
	}
	pk.Filters = filters
	h.opts.Observer.LimitHit(LimitSubscriptions)
	return pk
}

// OnSubscribed explains refused filters with an error event. It cannot be
// sent from OnSubscribe: the delivery would take a packet id before mochi
// checks the SUBSCRIBE's own id against those in flight.
func (h *Hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	refused := 0
	for _, f := range pk.Filters {
		if f.Filter == refusedFilter {
			refused++
		}
	}
	if refused == 0 {
		return
	}
	if user, device, ok := auth.Identity(cl); ok {
		h.reply(user, device, packets.Packet{}, protocol.Event{
			V: protocol.Version, Type: protocol.EvError,
			Error: protocol.Errorf(protocol.CodeTooLarge, "%d subscriptions refused: the limit is %d per client", refused, h.opts.MaxSubscriptions),
		})
	}
}

// addrKey names the source of a connection for the per-address limits:
// the IP address, or its /64 for IPv6, where one subscriber usually holds
// a whole prefix.
func addrKey(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap()
	if a.Is6() {
		if p, err := a.Prefix(64); err == nil {
			return p.String()
		}
	}
	return a.String()
}
