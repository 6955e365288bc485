// Package msgr is the Go client SDK for the msgr chat broker.
//
// A Client is one device of one user. Dial connects it, keeps it connected,
// subscribes to the user's inbox and the device's topic on every
// connection, and catches up on missed messages through the broker's sync
// protocol. Every message reaches Config.OnMessage once per Client, whether
// it arrived live or through sync; the Client acknowledges it to the broker
// after the handler returns. Receipts, presence changes and typing notices
// reach Config.OnReceipt, OnPresence and OnTyping; Unread keeps unread
// counts per conversation. Commands (Send, History, MarkRead, ...) are
// request/response over MQTT 5 and block until the broker's reply.
//
// docs/PROTOCOL.md describes the wire protocol this package implements.
package msgr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session/state"
	"github.com/eclipse/paho.golang/paho/store/file"
	"github.com/msgrhq/msgr/protocol"
)

// ErrClosed is returned by requests made on, or interrupted by, a closed Client.
var ErrClosed = errors.New("msgr: client closed")

// Defaults for the zero values of Config.
const (
	DefaultKeepAlive      = 60 * time.Second
	DefaultRequestTimeout = 10 * time.Second
	DefaultSessionExpiry  = 24 * time.Hour
	DefaultAckInterval    = 200 * time.Millisecond
)

const (
	// defaultGapWait is how long a gap in a conversation may stay open
	// before the client syncs to fill it.
	defaultGapWait = time.Second
	// defaultRefusalGrace is how long to wait for the error event that
	// explains a PUBACK refusal.
	defaultRefusalGrace = 2 * time.Second
	// maxRanges bounds the per-conversation deduplication state.
	maxRanges = 32
	// closeTimeout bounds the final acknowledgement and DISCONNECT in Close.
	closeTimeout = 5 * time.Second
)

// Config configures a Client.
type Config struct {
	// ServerURL is the broker: mqtt://host:port or ws://host:port/path.
	ServerURL string
	// User and Device identify the client; its MQTT client id is User/Device.
	User, Device string
	// Password is the user's password, or an access token of this device.
	Password string
	// TokenSource, when set, is called before every connection attempt and
	// its result sent as the password, so that reconnecting hours later
	// uses a fresh access token (see Login and TokenSession.Token).
	TokenSource func(ctx context.Context) (string, error)
	// HTTPURL is the broker's HTTP API (http://host:port), needed for
	// media (Upload, Download); HTTPClient is used for it, or
	// http.DefaultClient.
	HTTPURL    string
	HTTPClient *http.Client

	// SessionDir, when set, keeps the MQTT session in files under this
	// directory (one directory per user and device) and asks the broker to
	// keep it for SessionExpiry, so messages published while the device was
	// away come back on reconnect without waiting for sync. Empty means an
	// in-memory session with a clean start. Either way sync makes delivery
	// complete; the session is only a fast path.
	SessionDir string
	// SessionExpiry is how long the broker keeps a persistent session;
	// DefaultSessionExpiry if zero. Used only with SessionDir.
	SessionExpiry time.Duration

	// KeepAlive is the MQTT keepalive; DefaultKeepAlive if zero.
	KeepAlive time.Duration
	// RequestTimeout bounds one attempt of a request (publish, PUBACK and
	// reply); DefaultRequestTimeout if zero. Idempotent requests are retried
	// until their context is done.
	RequestTimeout time.Duration
	// SyncLimit is the sync page size to ask for; 0 lets the broker choose.
	SyncLimit int
	// AckInterval is how often acknowledgements of live messages are
	// flushed; DefaultAckInterval if zero.
	AckInterval time.Duration

	// OnMessage receives every message of every conversation of the user,
	// live or caught up by sync, once per Client. Calls are sequential and
	// ordered by seq within a conversation except where a sync page fills
	// a gap (order by seq when displaying). A message is acknowledged to
	// the broker only after OnMessage returns. OnMessage may call the
	// Client's request methods, but not Sync or Close.
	OnMessage func(protocol.Message)
	// OnReceipt receives receipt events: a member received or read
	// messages the user sent (StatusOf tells what that means for one of
	// them), or, with Receipt.User the user themself, one of the user's
	// devices read a conversation. The handlers OnMessage, OnReceipt,
	// OnPresence and OnTyping are called one at a time, in arrival order,
	// with the same restrictions as OnMessage.
	OnReceipt func(protocol.Receipt)
	// OnPresence receives a contact's presence when they come online or go
	// offline. Presence events are best effort (MQTT QoS 0): ask Presence
	// for the current state.
	OnPresence func(protocol.Presence)
	// OnTyping receives a member's typing notice. Show it for Typing.TTL
	// milliseconds unless it is repeated; a message from the same user ends
	// it. Typing notices are best effort (MQTT QoS 0).
	OnTyping func(protocol.Typing)

	// Logger receives diagnostics; nothing is logged if nil.
	Logger *slog.Logger
}

func (cfg Config) withDefaults() (Config, error) {
	if !protocol.ValidID(cfg.User) {
		return cfg, fmt.Errorf("msgr: invalid user %q", cfg.User)
	}
	if !protocol.ValidID(cfg.Device) {
		return cfg, fmt.Errorf("msgr: invalid device %q", cfg.Device)
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.SessionExpiry <= 0 {
		cfg.SessionExpiry = DefaultSessionExpiry
	}
	if cfg.AckInterval <= 0 {
		cfg.AckInterval = DefaultAckInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// Client is a connected device. It is safe for concurrent use.
type Client struct {
	cfg    Config
	log    *slog.Logger
	inbox  string // topic of the user's events
	device string // topic of this device's replies and sync pages

	link    *linkState
	pending pendingRequests
	queue   *eventQueue

	deliverMu sync.Mutex // serialises the application's handler calls
	trackMu   sync.Mutex // guards track
	track     *tracker
	unreadMu  sync.Mutex // guards unread
	unread    *unreadCounts
	syncMu    sync.Mutex // one sync loop at a time

	fatal chan error // connection refusals that retrying cannot fix

	gapWait      time.Duration
	refusalGrace time.Duration

	errMu      sync.Mutex
	lastConnEr error // why the last connection attempt failed

	// Shutdown: closing stops new requests and the background loops,
	// dead fails requests still waiting once the connection is gone.
	closeOnce  sync.Once
	closing    chan struct{}
	dead       chan struct{}
	loopCancel context.CancelFunc
	loops      sync.WaitGroup
	disconnect func(context.Context) error // nil without a connection manager
	closeErr   error
}

// newClient builds a Client without a connection; Dial adds one, tests
// drive the link state with a fake publisher.
func newClient(cfg Config) *Client {
	return &Client{
		cfg:     cfg,
		log:     cfg.Logger,
		inbox:   protocol.InboxTopic(cfg.User),
		device:  protocol.DeviceTopic(cfg.User, cfg.Device),
		link:    newLinkState(),
		queue:   newEventQueue(),
		track:   newTracker(maxRanges),
		unread:  newUnreadCounts(),
		fatal:   make(chan error, 1),
		closing: make(chan struct{}),
		dead:    make(chan struct{}),

		gapWait:      defaultGapWait,
		refusalGrace: defaultRefusalGrace,
	}
}

// Dial connects to the broker and returns once the device is connected and
// subscribed, or ctx is done, or the broker refused the credentials. The
// Client then reconnects by itself until Close.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(cfg.ServerURL)
	if err != nil {
		return nil, fmt.Errorf("msgr: server url: %w", err)
	}
	switch u.Scheme {
	case "mqtt", "tcp", "ws", "wss", "tls", "mqtts":
	default:
		return nil, fmt.Errorf("msgr: server url %q: unsupported scheme %q", cfg.ServerURL, u.Scheme)
	}

	c := newClient(cfg)
	acfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     uint16(min(max(1, cfg.KeepAlive/time.Second), 65535)),
		CleanStartOnInitialConnection: cfg.SessionDir == "",
		ReconnectBackoff:              autopaho.NewExponentialBackoff(100*time.Millisecond, 5*time.Second, 500*time.Millisecond, 2),
		ConnectTimeout:                cfg.RequestTimeout,
		ConnectUsername:               cfg.User,
		ConnectPassword:               []byte(cfg.Password),
		// Setting a session expiry makes autopaho send Request Problem
		// Information 0, which strips reason strings from the broker's acks.
		ConnectPacketBuilder: func(cp *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			if cp.Properties == nil {
				cp.Properties = &paho.ConnectProperties{}
			}
			cp.Properties.RequestProblemInfo = true
			if cfg.TokenSource != nil { // tokens.go
				return withToken(cp, cfg.TokenSource, cfg.RequestTimeout)
			}
			return cp, nil
		},
		OnConnectionUp:   c.onConnectionUp,
		OnConnectionDown: c.onConnectionDown,
		OnConnectError:   c.onConnectError,
		Errors:           pahoLogger{c.log, slog.LevelWarn},
		Debug:            pahoLogger{c.log, slog.LevelDebug},
		PahoErrors:       pahoLogger{c.log, slog.LevelWarn},
		PahoDebug:        pahoLogger{c.log, slog.LevelDebug},
		ClientConfig: paho.ClientConfig{
			ClientID:          protocol.ClientID(cfg.User, cfg.Device),
			PacketTimeout:     cfg.RequestTimeout,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){c.onPublishReceived},
			// Messages and pushed sync pages are acknowledged only after
			// OnMessage has run: the broker takes a PUBACK as "delivered"
			// and moves the device's sync cursor past it.
			EnableManualAcknowledgment: true,
		},
	}
	var session *state.State
	if cfg.SessionDir != "" {
		session, err = openSession(cfg.SessionDir)
		if err != nil {
			return nil, err
		}
		acfg.Session = session
		acfg.SessionExpiryInterval = uint32(cfg.SessionExpiry / time.Second)
	}
	cm, err := autopaho.NewConnection(context.Background(), acfg)
	if err != nil {
		if session != nil {
			_ = session.Close()
		}
		return nil, fmt.Errorf("msgr: %w", err)
	}
	c.disconnect = func(ctx context.Context) error {
		err := cm.Disconnect(ctx)
		if session != nil {
			err = errors.Join(err, session.Close())
		}
		return err
	}
	c.start()

	_, ready := c.link.current()
	select {
	case <-ready:
		return c, nil
	case err := <-c.fatal:
		_ = c.Close()
		return nil, fmt.Errorf("msgr: dial %s: %w", cfg.ServerURL, err)
	case <-ctx.Done():
		_ = c.Close()
		if last := c.lastConnectError(); last != nil {
			return nil, fmt.Errorf("msgr: dial %s: %w (last error: %w)", cfg.ServerURL, ctx.Err(), last)
		}
		return nil, fmt.Errorf("msgr: dial %s: %w", cfg.ServerURL, ctx.Err())
	}
}

func openSession(dir string) (*state.State, error) {
	// paho requires a separate folder per store.
	cli, err := file.New(filepath.Join(dir, "cli"), "", ".pkt")
	if err != nil {
		return nil, fmt.Errorf("msgr: session store: %w", err)
	}
	srv, err := file.New(filepath.Join(dir, "srv"), "", ".pkt")
	if err != nil {
		return nil, fmt.Errorf("msgr: session store: %w", err)
	}
	return state.New(cli, srv), nil
}

// start runs the background loops: the event loop (messages and sync
// pages, in arrival order) and the acknowledgement flusher.
func (c *Client) start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.loopCancel = cancel
	c.loops.Add(2)
	go func() {
		defer c.loops.Done()
		c.eventLoop(ctx)
	}()
	go func() {
		defer c.loops.Done()
		c.flushLoop(ctx)
	}()
}

// Close acknowledges what the application has received, disconnects and
// releases the Client. It waits for a running OnMessage call to return.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		close(c.closing)
		if c.loopCancel != nil {
			c.loopCancel()
			c.loops.Wait()
		}
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		// Without a connection the acknowledgements are dropped: the
		// messages come again in the next sync and are deduplicated then.
		if c.hasLink() {
			if err := c.flushAcks(ctx); err != nil {
				c.log.Warn("msgr: final acknowledgement failed", "err", err)
			}
		}
		if c.disconnect != nil {
			c.closeErr = c.disconnect(ctx)
		}
		close(c.dead)
	})
	return c.closeErr
}

func (c *Client) hasLink() bool {
	l, _ := c.link.current()
	return l != nil
}

func (c *Client) isClosing() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

func (c *Client) onConnectionUp(cm *autopaho.ConnectionManager, _ *paho.Connack) {
	gen := c.link.connected()
	c.log.Debug("msgr: connected", "server", c.cfg.ServerURL)
	// autopaho's callback must not block; SUBACK arrives on its goroutines.
	go c.subscribe(cm, gen)
}

func (c *Client) onConnectionDown() bool {
	c.log.Debug("msgr: connection lost")
	c.link.lost()
	return true
}

func (c *Client) onConnectError(err error) {
	c.errMu.Lock()
	c.lastConnEr = err
	c.errMu.Unlock()
	var ce *autopaho.ConnackError
	if errors.As(err, &ce) && permanentRefusal(ce.ReasonCode) {
		c.log.Error("msgr: broker refused the connection", "err", err)
		c.reportFatal(err)
		return
	}
	c.log.Debug("msgr: connection attempt failed", "err", err)
}

func (c *Client) lastConnectError() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.lastConnEr
}

func (c *Client) reportFatal(err error) {
	select {
	case c.fatal <- err:
	default:
	}
}

// permanentRefusal reports whether a CONNACK reason means reconnecting with
// the same settings cannot succeed.
func permanentRefusal(reason byte) bool {
	switch reason {
	case 0x84, // unsupported protocol version
		0x85, // client identifier not valid
		0x86, // bad user name or password
		0x87, // not authorized
		0x8A, // banned
		0x8C: // bad authentication method
		return true
	}
	return false
}

// subscribe subscribes connection gen to the inbox and device topics; the
// broker answers the device subscription with the first sync page.
func (c *Client) subscribe(cm *autopaho.ConnectionManager, gen uint64) {
	sub := &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: c.inbox, QoS: 1},
		{Topic: c.device, QoS: 1},
	}}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.RequestTimeout)
		suback, err := cm.Subscribe(ctx, sub)
		cancel()
		if err == nil {
			if c.link.subscribed(gen, cm) {
				c.log.Debug("msgr: subscribed", "inbox", c.inbox, "device", c.device)
			}
			return
		}
		if suback != nil && !packetIDInUse(suback.Reasons) {
			// Refused by the broker's ACL: retrying cannot help.
			err = fmt.Errorf("subscribe refused (reasons %v): %w", suback.Reasons, err)
			c.log.Error("msgr: subscribe refused", "err", err)
			c.reportFatal(err)
			return
		}
		// mochi keeps the packet ids of its own pending deliveries and ours
		// in one map: resuming a session with queued messages, our SUBSCRIBE
		// can reuse an id the broker is still delivering with and is refused
		// with 0x91 until we have acknowledged those deliveries.
		c.log.Debug("msgr: subscribe failed; retrying", "err", err)
		select {
		case <-c.closing:
			return
		case <-time.After(100 * time.Millisecond):
		}
		if !c.link.isCurrent(gen) {
			return // the next connection subscribes again
		}
	}
}

// packetIDInUse reports whether a SUBACK refused only because of a packet
// identifier collision (0x91), which goes away by itself.
func packetIDInUse(reasons []byte) bool {
	for _, r := range reasons {
		if r >= 0x80 && r != 0x91 {
			return false
		}
	}
	return len(reasons) > 0
}

// onPublishReceived runs on paho's receive goroutine: it must not block.
// Acknowledgements are manual: the broker treats the PUBACK of a message
// or pushed sync page as delivery to this device, so those are acknowledged
// once the application has handled them (a crash before that makes the
// broker deliver them again); everything else at once.
func (c *Client) onPublishReceived(pr paho.PublishReceived) (bool, error) {
	var corr []byte
	if pr.Packet.Properties != nil {
		corr = pr.Packet.Properties.CorrelationData
	}
	ack := func() {
		// Acking on a connection that has since gone is a no-op: the
		// broker redelivers, and the SDK deduplicates.
		if err := pr.Client.Ack(pr.Packet); err != nil {
			c.log.Debug("msgr: ack", "err", err)
		}
	}
	if !c.receive(pr.Packet.Topic, pr.Packet.Payload, corr, ack) {
		ack()
	}
	return true, nil
}

// receive routes one inbound event. It returns true when it queued a
// message or sync page together with ack, which the event loop calls after
// handling it; false means the caller acknowledges now.
func (c *Client) receive(topic string, payload, corr []byte, ack func()) bool {
	var ev protocol.Event
	if err := json.Unmarshal(payload, &ev); err != nil {
		c.log.Warn("msgr: undecodable event", "topic", topic, "err", err)
		return false
	}
	if ev.V != protocol.Version {
		c.log.Warn("msgr: event of unknown version", "topic", topic, "v", ev.V)
		return false
	}
	switch topic {
	case c.inbox:
		switch {
		case ev.Type == protocol.EvMessage && ev.Msg != nil:
			c.queue.push(queued{msg: ev.Msg, ack: ack})
			return true
		case ev.Type == protocol.EvReceipt && ev.Receipt != nil,
			ev.Type == protocol.EvPresence && len(ev.Presence) > 0,
			ev.Type == protocol.EvTyping && ev.Typing != nil:
			c.queue.push(queued{notice: &ev})
			return false
		}
	case c.device:
		id := ev.Req
		if id == "" {
			id = string(corr)
		}
		if id != "" && c.pending.deliver(id, &ev) {
			return false
		}
		if ev.Type == protocol.EvSync && ev.Req == "" {
			c.queue.push(queued{page: &ev, ack: ack})
			return true
		}
		if ev.Type == protocol.EvError && ev.Error != nil {
			c.log.Warn("msgr: unsolicited error", "op", ev.Op, "req", ev.Req, "err", ev.Error)
			return false
		}
	}
	c.log.Debug("msgr: ignored event", "topic", topic, "type", ev.Type, "req", ev.Req)
	return false
}

// pahoLogger adapts slog to paho's logger interface.
type pahoLogger struct {
	l     *slog.Logger
	level slog.Level
}

func (p pahoLogger) Println(v ...any) {
	if p.l.Enabled(context.Background(), p.level) {
		s := fmt.Sprintln(v...)
		p.l.Log(context.Background(), p.level, s[:len(s)-1], "component", "paho")
	}
}

func (p pahoLogger) Printf(format string, v ...any) {
	if p.l.Enabled(context.Background(), p.level) {
		p.l.Log(context.Background(), p.level, fmt.Sprintf(format, v...), "component", "paho")
	}
}
