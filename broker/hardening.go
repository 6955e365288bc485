package broker

import (
	"crypto/tls"
	"fmt"
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/msgrhq/msgr/chat"
	"github.com/msgrhq/msgr/hooks/limits"
	"github.com/msgrhq/msgr/hooks/stats"
	"github.com/msgrhq/msgr/metrics"
)

// replyPublisher is what the chat core and hooks publish through.
type replyPublisher interface {
	chat.Publisher
	Reply(topic string, payload, correlation []byte) error
}

// instruments are the broker's hardening parts: metrics (with the store and
// publisher wrapped to feed them), TLS configurations and the limits.
type instruments struct {
	cfg             Config
	log             *slog.Logger
	metrics         *metrics.Metrics
	store           chat.Store
	pub             replyPublisher
	stats           mqtt.Hook // nil without metrics
	tlsMQTT, tlsWeb *tls.Config
}

func newInstruments(cfg Config, store chat.Store, pub *publisher, log *slog.Logger) (*instruments, error) {
	in := &instruments{cfg: cfg, log: log, store: store, pub: pub}
	if cfg.Metrics {
		in.metrics = metrics.New()
		in.store = meteredStore{Store: store, m: in.metrics}
		in.pub = meteredPublisher{publisher: pub, m: in.metrics}
		in.stats = stats.New(in.metrics, nil)
	}
	if cfg.TLS.Enabled() {
		var err error
		if in.tlsMQTT, in.tlsWeb, err = cfg.TLS.tlsConfigs(log); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// limits returns the limits hook for srv.
func (in *instruments) limits(srv *mqtt.Server) *limits.Hook {
	var obs limits.Observer
	if in.metrics != nil {
		obs = in.metrics
	}
	return limits.New(limits.Options{
		Config:      in.cfg.Limits,
		SendConnack: srv.SendConnack,
		Replies:     in.pub,
		Observer:    obs,
		Logger:      in.log,
	})
}

// listenTLS opens the MQTT over TLS listener when a certificate is set.
func (b *Broker) listenTLS() error {
	if b.tlsMQTT == nil {
		return nil
	}
	ln, err := b.listenTCP(b.cfg.TLS.MQTTAddr)
	if err != nil {
		return fmt.Errorf("mqtt tls listener: %w", err)
	}
	b.tlsAddr = ln.Addr()
	if err := b.mqtt.AddListener(b.conns.wrap(listeners.NewNet(tlsListenerID, tls.NewListener(ln, b.tlsMQTT)))); err != nil {
		ln.Close()
		return fmt.Errorf("mqtt tls listener: %w", err)
	}
	return nil
}

// MQTTTLSAddr is the bound MQTT over TLS address, or "" without TLS.
func (b *Broker) MQTTTLSAddr() string { return addrString(b.tlsAddr) }

// Metrics is the broker's metrics, nil when disabled.
func (b *Broker) Metrics() *metrics.Metrics { return b.metrics }
