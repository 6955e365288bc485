// Package broker assembles msgrd: the embedded mochi-mqtt server, msgr's
// hooks (auth, ACL, chat), the chat core, the MQTT/TCP, WebSocket and HTTP
// listeners, and their orderly shutdown.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/msgrhq/msgr/auth"
	"github.com/msgrhq/msgr/chat"
	"github.com/msgrhq/msgr/cluster"
	"github.com/msgrhq/msgr/hooks/acl"
	authhook "github.com/msgrhq/msgr/hooks/auth"
	chathook "github.com/msgrhq/msgr/hooks/chat"
	"github.com/msgrhq/msgr/hooks/limits"
	"github.com/msgrhq/msgr/hooks/session"
	"github.com/msgrhq/msgr/media"
	"github.com/msgrhq/msgr/metrics"
	"github.com/msgrhq/msgr/storage"
)

// sessionExpiry bounds how long mochi keeps a disconnected persistent
// session in memory. The store is the source of truth for chat delivery, so
// a longer session would only hold memory (and, for 3.1.1 clients, mochi's
// default never expires).
const sessionExpiry = 7 * 24 * time.Hour

// Broker is a running msgrd node.
type Broker struct {
	cfg   Config
	log   *slog.Logger
	store storage.Store
	svc   *chat.Service
	mqtt  *mqtt.Server
	http  *http.Server
	conns *connTracker
	sec   *security     // tokens, bans, admin API (security.go)
	node  *cluster.Node // nil for a single node

	media     *media.Service // nil when no blob store is configured
	stopMedia func()         // stops the media garbage collector

	metrics                    *metrics.Metrics // nil when disabled
	lim                        *limits.Hook
	tlsMQTT, tlsWeb            *tls.Config // nil without a certificate
	mqttAddr, wsAddr, httpAddr net.Addr
	tlsAddr                    net.Addr
}

// New assembles a broker on store (which the caller opened and closes) and
// starts its listeners. cfg must have been validated.
func New(cfg Config, store storage.Store, log *slog.Logger) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = int32(cfg.WritesPending)
	// mochi allocates a packet's full declared length before reading it;
	// without a bound one CONNECT could claim 256 MiB.
	caps.MaximumPacketSize = uint32(cfg.MaxPacketBytes)
	caps.MaximumSessionExpiryInterval = uint32(sessionExpiry / time.Second)
	// PUBACKs must not echo a command's properties back to the sender.
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	srv := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: log, ClientNetReadBufferSize: readBufferSize})

	pub := &publisher{srv: srv, cl: srv.NewClient(nil, "local", "msgr", true)}
	inst, err := newInstruments(cfg, store, pub, log)
	if err != nil {
		return nil, err
	}
	mediaSvc, err := newMediaService(cfg, store, log)
	if err != nil {
		return nil, err
	}
	node, err := newClusterNode(cfg, log)
	if err != nil {
		return nil, err
	}
	var peers chat.Cluster // nil interface for a single node
	if node != nil {
		peers = node
	}
	chatCfg := chat.Config{
		MaxTextBytes: cfg.MaxTextBytes,
		MaxMembers:   cfg.MaxGroupMembers,
		Cluster:      peers,
		Logger:       log,
	}
	if mediaSvc != nil {
		chatCfg.Media = mediaSvc
	}
	chatCfg.Writers = storeWriters(cfg) // tuning.go
	svc := chat.New(inst.store, inst.pub, chatCfg)
	b := &Broker{cfg: cfg, log: log, store: store, svc: svc, mqtt: srv, conns: newConnTracker(), media: mediaSvc, node: node,
		metrics: inst.metrics, tlsMQTT: inst.tlsMQTT, tlsWeb: inst.tlsWeb}
	hasher := auth.NewHasher(auth.DefaultParams, runtime.GOMAXPROCS(0))
	unknownUserHash, err := hasher.Hash(context.Background(), "msgr-unknown-user")
	if err != nil {
		b.abort()
		return nil, fmt.Errorf("prepare authentication: %w", err)
	}
	b.sec, err = newSecurity(cfg.Security, store, hasher, unknownUserHash)
	if err != nil {
		b.abort()
		return nil, err
	}
	chatHook := chathook.New(chathook.Options{
		Service:         svc,
		Replies:         inst.pub,
		MaxPayloadBytes: cfg.MaxPayloadBytes,
		Logger:          log,
	})
	lim := inst.limits(srv)
	b.lim = lim
	hooks := []mqtt.Hook{
		inst.stats,
		lim,
		lim.WrapAuth(authhook.New(authhook.Options{
			Auth:           b.sec.auth,
			Devices:        store,
			SendConnack:    srv.SendConnack,
			Disconnect:     srv.DisconnectClient,
			AllowAnonymous: cfg.AllowAnonymous,
			Logger:         log,
		})),
		&clientsHook{times: b.sec.clients},
		acl.New(cfg.grants, srv.SendConnack),
		&session.Hook{},
		chatHook,
	}
	for _, h := range hooks {
		if h == nil {
			continue
		}
		if err := srv.AddHook(h, nil); err != nil {
			b.abort()
			return nil, fmt.Errorf("add hook %s: %w", h.ID(), err)
		}
	}
	if err := b.startCluster(pub, chatHook); err != nil {
		b.abort()
		return nil, err
	}
	if err := b.listen(); err != nil {
		_ = srv.Close()
		b.abort()
		return nil, err
	}
	b.startMediaGC()
	return b, nil
}

// mochi listener ids; Close closes them by id.
const (
	tcpListenerID = "tcp"
	wsListenerID  = "ws"
	tlsListenerID = "tls"
)

// listen opens every configured listener and starts serving.
func (b *Broker) listen() error {
	tcp, err := b.listenTCP(b.cfg.MQTTAddr)
	if err != nil {
		return fmt.Errorf("mqtt listener: %w", err)
	}
	b.mqttAddr = tcp.Addr()
	if err := b.mqtt.AddListener(b.conns.wrap(listeners.NewNet(tcpListenerID, tcp))); err != nil {
		tcp.Close()
		return fmt.Errorf("mqtt listener: %w", err)
	}
	if b.cfg.WSAddr != "" {
		ln, err := b.listenTCP(b.cfg.WSAddr)
		if err != nil {
			return fmt.Errorf("websocket listener: %w", err)
		}
		b.wsAddr = ln.Addr()
		if b.tlsMQTT != nil {
			ln = tls.NewListener(ln, b.tlsMQTT)
		}
		if err := b.mqtt.AddListener(b.conns.wrap(newWSListener(wsListenerID, ln))); err != nil {
			ln.Close()
			return fmt.Errorf("websocket listener: %w", err)
		}
	}
	if err := b.listenTLS(); err != nil {
		return err
	}
	if err := b.mqtt.Serve(); err != nil {
		return fmt.Errorf("start mqtt server: %w", err)
	}
	if b.cfg.HTTPAddr != "" {
		ln, err := b.listenTCP(b.cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("http listener: %w", err)
		}
		b.httpAddr = ln.Addr()
		if b.tlsWeb != nil {
			ln = tls.NewListener(ln, b.tlsWeb)
		}
		b.http = &http.Server{Handler: b.routes(), ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(b.log.Handler(), slog.LevelDebug)}
		go func() {
			if err := b.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				b.log.Error("http server stopped", "error", err)
			}
		}()
	}
	b.log.Info("msgrd listening", "mqtt", b.mqttAddr, "mqtt_tls", b.tlsAddr, "ws", b.wsAddr, "http", b.httpAddr, "tls", b.tlsMQTT != nil)
	return nil
}

// listenTCP listens on addr, reading PROXY headers from the configured
// load balancers (before any TLS handshake: the header comes first).
func (b *Broker) listenTCP(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return proxyListener(ln, b.cfg.proxies), nil
}

// MQTTAddr is the bound MQTT/TCP address.
func (b *Broker) MQTTAddr() string { return addrString(b.mqttAddr) }

// WSAddr is the bound WebSocket address, or "" when disabled.
func (b *Broker) WSAddr() string { return addrString(b.wsAddr) }

// HTTPAddr is the bound HTTP address, or "" when disabled.
func (b *Broker) HTTPAddr() string { return addrString(b.httpAddr) }

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// Close stops the node: no new connections, clients disconnected (their
// wills published), queued sends committed and fanned out, HTTP stopped.
// The store stays open; it belongs to the caller.
func (b *Broker) Close(ctx context.Context) error {
	// mochi's own Close lists clients under a read lock it takes twice
	// (upstream issue #488) and deadlocks when a disconnecting client waits
	// for the write lock meanwhile. So: stop accepting, disconnect everyone
	// and wait for their goroutines; mochi's Close then has nothing to race.
	// The listeners are closed one by one: Listeners.CloseAll also waits
	// for every client's goroutine, before anyone has disconnected them, so
	// it hung forever (SIGTERM never exited) whenever a client was connected.
	for _, id := range []string{tcpListenerID, wsListenerID, tlsListenerID} {
		b.mqtt.Listeners.Close(id, func(string) {})
	}
	for _, cl := range b.mqtt.Clients.GetAll() {
		if !cl.Net.Inline && !cl.Closed() {
			_ = b.mqtt.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
	var errs []error
	// Connections still before their CONNECT are not mochi clients yet:
	// close them too, and wait for every connection through the tracker
	// rather than mochi's ClientsWg (see connTracker).
	if err := b.conns.closeAll(ctx); err != nil {
		errs = append(errs, fmt.Errorf("waiting for clients to disconnect: %w", err))
	}
	errs = append(errs, b.mqtt.Close())
	b.svc.Close()
	if b.node != nil {
		// After the disconnects above detached every device.
		errs = append(errs, b.node.Close(ctx))
	}
	if b.http != nil {
		errs = append(errs, b.http.Shutdown(ctx))
	}
	if b.stopMedia != nil {
		b.stopMedia()
	}
	return errors.Join(errs...)
}

// publisher injects broker-originated publishes through msgr's own inline
// client, so that they can carry MQTT 5 correlation data.
type publisher struct {
	srv *mqtt.Server
	cl  *mqtt.Client
}

func (p *publisher) Publish(topic string, payload []byte) error {
	return p.Reply(topic, payload, nil)
}

// Notify publishes at QoS 0: subscribers get it only if connected, and
// nothing is queued for offline sessions.
func (p *publisher) Notify(topic string, payload []byte) error {
	return p.srv.InjectPacket(p.cl, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   topic,
		Payload:     payload,
	})
}

func (p *publisher) Reply(topic string, payload, correlation []byte) error {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:   topic,
		Payload:     payload,
		PacketID:    1, // required by validation; inline publishes are never acknowledged
	}
	pk.Properties.CorrelationData = correlation
	return p.srv.InjectPacket(p.cl, pk)
}
