package broker

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"time"
)

// TLSConfig selects certificate files. With CertFile set, MQTT over TLS
// listens on MQTTAddr, and the WebSocket and HTTP listeners serve wss and
// https instead of plain text.
type TLSConfig struct {
	CertFile     string // PEM certificate chain
	KeyFile      string // PEM private key
	ClientCAFile string // PEM CAs that sign client certificates
	ClientAuth   string // none, request or require: client certificates on MQTT/TLS and wss
	MQTTAddr     string // MQTT over TLS listen address
}

// Enabled reports whether a certificate is configured.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" }

func (c *Config) hardeningFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.TLS.CertFile, "tls-cert", c.TLS.CertFile, "PEM certificate `file`; enables MQTT/TLS, wss and https (MSGR_TLS_CERT)")
	fs.StringVar(&c.TLS.KeyFile, "tls-key", c.TLS.KeyFile, "PEM private key `file` of tls-cert (MSGR_TLS_KEY)")
	fs.StringVar(&c.TLS.ClientCAFile, "tls-client-ca", c.TLS.ClientCAFile, "PEM `file` of the CAs that sign client certificates (MSGR_TLS_CLIENT_CA)")
	fs.StringVar(&c.TLS.ClientAuth, "tls-client-auth", c.TLS.ClientAuth, "client certificates on MQTT/TLS and wss: none, request (verified if sent) or require (MSGR_TLS_CLIENT_AUTH)")
	fs.StringVar(&c.TLS.MQTTAddr, "mqtt-tls-addr", c.TLS.MQTTAddr, "MQTT over TLS listen address, used when tls-cert is set (MSGR_MQTT_TLS_ADDR)")
	fs.BoolVar(&c.Metrics, "metrics", c.Metrics, "serve Prometheus metrics at /metrics on the HTTP listener (MSGR_METRICS)")

	l := &c.Limits
	fs.Float64Var(&l.MessageRate, "message-rate", l.MessageRate, "messages (send commands) per second per user, 0 for no limit (MSGR_MESSAGE_RATE)")
	fs.IntVar(&l.MessageBurst, "message-burst", l.MessageBurst, "messages a user may send at once above message-rate (MSGR_MESSAGE_BURST)")
	fs.Float64Var(&l.CommandRate, "command-rate", l.CommandRate, "chat commands of any kind per second per user, 0 for no limit (MSGR_COMMAND_RATE)")
	fs.IntVar(&l.CommandBurst, "command-burst", l.CommandBurst, "commands a user may send at once above command-rate (MSGR_COMMAND_BURST)")
	fs.Float64Var(&l.ConnRate, "conn-rate", l.ConnRate, "MQTT connection attempts per second per IP address (IPv6: per /64), 0 for no limit (MSGR_CONN_RATE)")
	fs.IntVar(&l.ConnBurst, "conn-burst", l.ConnBurst, "connection attempts an address may make at once above conn-rate (MSGR_CONN_BURST)")
	fs.IntVar(&l.LoginFailuresUser, "login-failures-user", l.LoginFailuresUser, "failed logins of a user before backoff starts, 0 for no throttling (MSGR_LOGIN_FAILURES_USER)")
	fs.IntVar(&l.LoginFailuresIP, "login-failures-ip", l.LoginFailuresIP, "failed logins from an address before backoff starts, 0 for no throttling (MSGR_LOGIN_FAILURES_IP)")
	fs.DurationVar(&l.LoginBackoff, "login-backoff", l.LoginBackoff, "first login lockout after the free failures; doubles with each further failure (MSGR_LOGIN_BACKOFF)")
	fs.DurationVar(&l.LoginBackoffMax, "login-backoff-max", l.LoginBackoffMax, "longest login lockout (MSGR_LOGIN_BACKOFF_MAX)")
	fs.DurationVar(&l.LoginForget, "login-forget", l.LoginForget, "failed logins are forgotten after this long without another (MSGR_LOGIN_FORGET)")
	fs.IntVar(&l.MaxConnsPerUser, "max-conns-per-user", l.MaxConnsPerUser, "simultaneous connections per user, further ones refused; 0 for no limit (MSGR_MAX_CONNS_PER_USER)")
	fs.IntVar(&l.MaxSubscriptions, "max-subscriptions", l.MaxSubscriptions, "subscriptions per client, 0 for no limit (MSGR_MAX_SUBSCRIPTIONS)")
}

func (c *Config) validateHardening() []error {
	var errs []error
	t := c.TLS
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		errs = append(errs, errors.New("tls-key: required with tls-cert"))
	case t.CertFile == "" && (t.KeyFile != "" || t.ClientCAFile != ""):
		errs = append(errs, errors.New("tls-cert: required with tls-key and tls-client-ca"))
	}
	switch t.ClientAuth {
	case "none":
	case "request", "require":
		if t.ClientCAFile == "" {
			errs = append(errs, fmt.Errorf("tls-client-ca: required with tls-client-auth=%s", t.ClientAuth))
		}
	default:
		errs = append(errs, fmt.Errorf("tls-client-auth: %q is not none, request or require", t.ClientAuth))
	}
	if t.CertFile != "" {
		if _, port, err := net.SplitHostPort(t.MQTTAddr); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("mqtt-tls-addr: %q is not a host:port address", t.MQTTAddr))
		}
	}
	l := c.Limits
	rate := func(name string, r float64, burstName string, burst int) {
		if r < 0 || r > 1e9 || r != r {
			errs = append(errs, fmt.Errorf("%s: %g is outside 0..1e9", name, r))
		}
		if r > 0 && (burst < 1 || burst > 1<<20) {
			errs = append(errs, fmt.Errorf("%s: %d is outside 1..%d", burstName, burst, 1<<20))
		}
	}
	rate("message-rate", l.MessageRate, "message-burst", l.MessageBurst)
	rate("command-rate", l.CommandRate, "command-burst", l.CommandBurst)
	rate("conn-rate", l.ConnRate, "conn-burst", l.ConnBurst)
	count := func(name string, v, max int) {
		if v < 0 || v > max {
			errs = append(errs, fmt.Errorf("%s: %d is outside 0..%d", name, v, max))
		}
	}
	count("login-failures-user", l.LoginFailuresUser, 1_000_000)
	count("login-failures-ip", l.LoginFailuresIP, 1_000_000)
	count("max-conns-per-user", l.MaxConnsPerUser, 1_000_000)
	count("max-subscriptions", l.MaxSubscriptions, 1_000_000)
	if l.LoginFailuresUser > 0 || l.LoginFailuresIP > 0 {
		if l.LoginBackoff < time.Millisecond || l.LoginBackoffMax < l.LoginBackoff {
			errs = append(errs, fmt.Errorf("login-backoff (%s) must be at least 1ms and at most login-backoff-max (%s)", l.LoginBackoff, l.LoginBackoffMax))
		}
		if l.LoginForget < l.LoginBackoffMax {
			errs = append(errs, fmt.Errorf("login-forget (%s) must be at least login-backoff-max (%s)", l.LoginForget, l.LoginBackoffMax))
		}
	}
	return errs
}
