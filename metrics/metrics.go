// Package metrics holds msgrd's Prometheus metrics in a registry of its own
// (no global registry) and serves them. The broker, hooks and chat core do
// not import Prometheus: they call small interfaces that *Metrics
// implements.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics records what a broker does. The zero value is not usable; a nil
// *Metrics is: every method does nothing, so callers need no checks.
type Metrics struct {
	reg *prometheus.Registry

	connections       *prometheus.GaugeVec
	connectionsTotal  *prometheus.CounterVec
	connectionRefused *prometheus.CounterVec
	commands          *prometheus.CounterVec
	received          prometheus.Counter
	stored            prometheus.Counter
	fannedOut         prometheus.Counter
	delivered         prometheus.Counter
	batchSize         prometheus.Histogram
	commitSeconds     prometheus.Histogram
	deliveryLatency   prometheus.Histogram
	events            *prometheus.CounterVec
	limitHits         *prometheus.CounterVec
	errors            *prometheus.CounterVec
}

// New returns metrics registered in a fresh registry, with the Go runtime
// and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "msgr_connections",
			Help: "MQTT connections currently established, by protocol version (3 = 3.1, 4 = 3.1.1, 5 = 5.0).",
		}, []string{"version"}),
		connectionsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "msgr_connections_total",
			Help: "MQTT connections established, by protocol version.",
		}, []string{"version"}),
		connectionRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "msgr_connections_refused_total",
			Help: "MQTT connections refused, by reason.",
		}, []string{"reason"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "msgr_commands_total",
			Help: "Chat commands received, by op (before validation and limits).",
		}, []string{"op"}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "msgr_messages_received_total",
			Help: "send commands received from clients.",
		}),
		stored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "msgr_messages_stored_total",
			Help: "Messages committed to the store (duplicates and refusals excluded).",
		}),
		fannedOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "msgr_messages_published_total",
			Help: "Message events published to members' inboxes by fan-out.",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "msgr_messages_delivered_total",
			Help: "Message events a recipient device acknowledged with PUBACK.",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "msgr_store_batch_messages",
			Help:    "Messages per group commit.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "msgr_store_commit_seconds",
			Help:    "Duration of one group commit (AppendMessages).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 17), // 100µs .. 6.5s
		}),
		deliveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "msgr_delivery_latency_seconds",
			Help:    "From a message's server timestamp (taken before its commit) to the recipient device's PUBACK of the live delivery.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15), // 1ms .. 16s
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "msgr_events_published_total",
			Help: "Receipt, presence and typing events published to inboxes, by type.",
		}, []string{"type"}),
		limitHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "msgr_limit_hits_total",
			Help: "Requests or connections refused by a rate or abuse limit, by limit.",
		}, []string{"limit"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "msgr_errors_total",
			Help: "Errors by kind: chat_<code> for error events sent to clients, store_commit, publish.",
		}, []string{"kind"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.connections, m.connectionsTotal, m.connectionRefused, m.commands,
		m.received, m.stored, m.fannedOut, m.delivered,
		m.batchSize, m.commitSeconds, m.deliveryLatency,
		m.events, m.limitHits, m.errors,
	)
	return m
}

// Registry is the registry the metrics live in, for extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func version(v byte) string { return strconv.Itoa(int(v)) }

// Connected counts an established MQTT connection.
func (m *Metrics) Connected(protocolVersion byte) {
	if m == nil {
		return
	}
	m.connections.WithLabelValues(version(protocolVersion)).Inc()
	m.connectionsTotal.WithLabelValues(version(protocolVersion)).Inc()
}

// Disconnected counts the end of an established MQTT connection.
func (m *Metrics) Disconnected(protocolVersion byte) {
	if m == nil {
		return
	}
	m.connections.WithLabelValues(version(protocolVersion)).Dec()
}

// ConnectionRefused counts a refused connection.
func (m *Metrics) ConnectionRefused(reason string) {
	if m == nil {
		return
	}
	m.connectionRefused.WithLabelValues(reason).Inc()
}

// Command counts a chat command publish; op must come from a bounded set.
func (m *Metrics) Command(op string) {
	if m == nil {
		return
	}
	m.commands.WithLabelValues(op).Inc()
	if op == "send" {
		m.received.Inc()
	}
}

// Committed records one group commit of batch messages, of which stored
// were new.
func (m *Metrics) Committed(batch, stored int, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.batchSize.Observe(float64(batch))
	m.commitSeconds.Observe(d.Seconds())
	if err != nil {
		m.errors.WithLabelValues("store_commit").Inc()
		return
	}
	m.stored.Add(float64(stored))
}

// MessagePublished counts a message event published to an inbox.
func (m *Metrics) MessagePublished() {
	if m == nil {
		return
	}
	m.fannedOut.Inc()
}

// EventPublished counts a receipt, presence or typing event.
func (m *Metrics) EventPublished(eventType string) {
	if m == nil {
		return
	}
	m.events.WithLabelValues(eventType).Inc()
}

// Delivered records a recipient's PUBACK of a message event, latency after
// the message's server timestamp.
func (m *Metrics) Delivered(latency time.Duration) {
	if m == nil {
		return
	}
	m.delivered.Inc()
	if latency >= 0 {
		m.deliveryLatency.Observe(latency.Seconds())
	}
}

// LimitHit counts a refusal by the named limit.
func (m *Metrics) LimitHit(limit string) {
	if m == nil {
		return
	}
	m.limitHits.WithLabelValues(limit).Inc()
}

// Error counts an error of the given kind; kinds must come from a bounded set.
func (m *Metrics) Error(kind string) {
	if m == nil {
		return
	}
	m.errors.WithLabelValues(kind).Inc()
}
