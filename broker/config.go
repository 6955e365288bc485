package broker

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/msgrhq/msgr/cluster"
	"github.com/msgrhq/msgr/hooks/acl"
	"github.com/msgrhq/msgr/hooks/limits"
)

// Config is msgrd's configuration. Every field has a flag and an MSGR_*
// environment variable; flags win over the environment.
type Config struct {
	MQTTAddr        string // MQTT over TCP
	WSAddr          string // MQTT over WebSocket; empty disables
	HTTPAddr        string // health checks (and later the admin API); empty disables
	DataDir         string // embedded store directory
	DatabaseURL     string // PostgreSQL; empty selects the embedded store
	AllowAnonymous  bool
	TopicGrants     string // generic topic trees, see acl.ParseRules
	MaxGroupMembers int
	MaxTextBytes    int
	MaxPayloadBytes int
	MaxPacketBytes  int // largest MQTT packet a client may send, any topic
	WritesPending   int // per-client outbound queue (mochi MaximumClientWritesPending)
	LogLevel        string
	LogFormat       string
	Security        SecurityConfig // tokens, admin API, node id (security_config.go)
	Media           MediaConfig
	RedisURL        string        // cluster mode: the shared Redis; empty runs a single node
	RedisPrefix     string        // cluster key and channel prefix (several deployments on one Redis)
	ClusterTTL      time.Duration // cluster registry entry lifetime (refreshed every third of it)

	Pprof bool // serve net/http/pprof under /debug/pprof/ on the HTTP listener

	ProxyProtocolFrom string // load balancers that send a PROXY header first (proxyproto.go)

	// Encryption at rest (see keys.go). MasterKey is MSGR_MASTER_KEY, which
	// has no flag so that the key never shows in a process listing.
	MasterKeyFile         string
	MasterKey             string
	PreviousMasterKeyFile string // unwrap-only, while rotating

	// Security hardening (config_hardening.go): TLS, limits, metrics.
	TLS     TLSConfig
	Limits  limits.Config
	Metrics bool // serve /metrics on the HTTP listener

	grants  []acl.Rule
	proxies []netip.Prefix
}

// DefaultConfig returns the embedded single-node defaults.
func DefaultConfig() Config {
	return Config{
		MQTTAddr:        "127.0.0.1:1883",
		WSAddr:          "127.0.0.1:8083",
		HTTPAddr:        "127.0.0.1:8080",
		DataDir:         "./data",
		MaxGroupMembers: 1024,
		MaxTextBytes:    16 * 1024,
		MaxPayloadBytes: 64 * 1024,
		MaxPacketBytes:  1 << 20,
		WritesPending:   1024, // 256 saves ~4 KiB per idle connection but dropped deliveries under load (docs/BENCHMARKS.md)
		LogLevel:        "info",
		LogFormat:       "text",
		Security:        DefaultSecurityConfig(),
		Media:           defaultMediaConfig(),
		RedisPrefix:     "msgr",
		ClusterTTL:      cluster.DefaultTTL,
		TLS:             TLSConfig{MQTTAddr: ":8883", ClientAuth: "none"},
		Limits:          limits.DefaultConfig(),
		Metrics:         true,
	}
}

// Flags registers cfg's fields on fs.
func (c *Config) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.MQTTAddr, "mqtt-addr", c.MQTTAddr, "MQTT/TCP listen address `host:port` (MSGR_MQTT_ADDR)")
	fs.StringVar(&c.WSAddr, "ws-addr", c.WSAddr, "MQTT over WebSocket listen address, empty to disable (MSGR_WS_ADDR)")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "HTTP address for /healthz and /readyz, empty to disable (MSGR_HTTP_ADDR)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory of the embedded store (MSGR_DATA_DIR)")
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "PostgreSQL URL; empty uses the embedded store (MSGR_DATABASE_URL)")
	fs.BoolVar(&c.AllowAnonymous, "allow-anonymous", c.AllowAnonymous, "accept clients without a username, for granted topic trees only (MSGR_ALLOW_ANONYMOUS)")
	fs.StringVar(&c.TopicGrants, "topic-grants", c.TopicGrants, "generic topic trees every client may use, e.g. 'sensors/#=rw,status/+=r' (MSGR_TOPIC_GRANTS)")
	fs.IntVar(&c.MaxGroupMembers, "max-group-members", c.MaxGroupMembers, "largest group, owner included (MSGR_MAX_GROUP_MEMBERS)")
	fs.IntVar(&c.MaxTextBytes, "max-text-bytes", c.MaxTextBytes, "longest text message in bytes (MSGR_MAX_TEXT_BYTES)")
	fs.IntVar(&c.MaxPayloadBytes, "max-payload-bytes", c.MaxPayloadBytes, "largest command payload in bytes (MSGR_MAX_PAYLOAD_BYTES)")
	fs.IntVar(&c.MaxPacketBytes, "max-packet-bytes", c.MaxPacketBytes, "largest MQTT packet a client may send, on any topic (MSGR_MAX_PACKET_BYTES)")
	fs.IntVar(&c.WritesPending, "writes-pending", c.WritesPending, "outbound packets queued per client before drops (MSGR_WRITES_PENDING)")
	fs.StringVar(&c.ProxyProtocolFrom, "proxy-protocol-from", c.ProxyProtocolFrom, "comma-separated addresses or CIDR prefixes of load balancers whose connections start with a PROXY protocol v1/v2 header carrying the client's address; nobody else may send one (MSGR_PROXY_PROTOCOL_FROM)")
	fs.BoolVar(&c.Pprof, "pprof", c.Pprof, "serve Go profiles under /debug/pprof/ on the HTTP listener, for benchmarking; never on a public address (MSGR_PPROF)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error (MSGR_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json (MSGR_LOG_FORMAT)")
	c.Security.flags(fs)
	fs.StringVar(&c.MasterKeyFile, "master-key-file", c.MasterKeyFile, "file holding the master key (32 raw bytes, base64 or hex); the embedded store defaults to <data-dir>/master.key, created on first start; or give the key itself in MSGR_MASTER_KEY (MSGR_MASTER_KEY_FILE)")
	fs.StringVar(&c.PreviousMasterKeyFile, "previous-master-key-file", c.PreviousMasterKeyFile, "the master key being rotated away from, used only to unwrap (MSGR_PREVIOUS_MASTER_KEY_FILE)")
	c.Media.flags(fs)
	fs.StringVar(&c.RedisURL, "redis-url", c.RedisURL, "Redis for cluster mode (node id: --node-id, unique per running node): redis://, rediss://, redis+sentinel://...?master_name=M, redis+cluster://; empty runs a single node (MSGR_REDIS_URL)")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", c.RedisPrefix, "prefix of msgr's Redis keys and channels (MSGR_REDIS_PREFIX)")
	fs.DurationVar(&c.ClusterTTL, "cluster-ttl", c.ClusterTTL, "how long a dead node's registry entries outlive it (MSGR_CLUSTER_TTL)")
	c.hardeningFlags(fs)
}

// envName maps a flag name to its environment variable: mqtt-addr -> MSGR_MQTT_ADDR.
func envName(flagName string) string {
	return "MSGR_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse fills cfg from the environment, then args, and validates it.
// lookupEnv is os.LookupEnv in production: a variable set to the empty
// string counts (MSGR_WS_ADDR= disables the WebSocket listener).
func (c *Config) Parse(fs *flag.FlagSet, args []string, lookupEnv func(string) (string, bool)) error {
	c.Flags(fs)
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if v, ok := lookupEnv(envName(f.Name)); ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", envName(f.Name), v, err))
			}
		}
	})
	if v, ok := lookupEnv(masterKeyEnv); ok {
		c.MasterKey = v
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	return c.Validate()
}

// Validate checks the configuration and reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	check := func(name, addr string, optional bool) {
		if addr == "" && optional {
			return
		}
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("%s: %q is not a host:port address", name, addr))
		}
	}
	check("mqtt-addr", c.MQTTAddr, false)
	check("ws-addr", c.WSAddr, true)
	check("http-addr", c.HTTPAddr, true)
	if c.DatabaseURL == "" && c.DataDir == "" {
		errs = append(errs, errors.New("data-dir: required when no database-url is set"))
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		errs = append(errs, errors.New("database-url: must start with postgres:// or postgresql://"))
	}
	positive := func(name string, v, max int) {
		if v < 1 || v > max {
			errs = append(errs, fmt.Errorf("%s: %d is outside 1..%d", name, v, max))
		}
	}
	positive("max-group-members", c.MaxGroupMembers, 100_000)
	positive("max-text-bytes", c.MaxTextBytes, 1<<20)
	positive("max-payload-bytes", c.MaxPayloadBytes, 16<<20)
	positive("max-packet-bytes", c.MaxPacketBytes, 256<<20)
	positive("writes-pending", c.WritesPending, 1<<16)
	if proxies, err := parseProxyFrom(c.ProxyProtocolFrom); err != nil {
		errs = append(errs, fmt.Errorf("proxy-protocol-from: %w", err))
	} else {
		c.proxies = proxies
	}
	if c.Pprof && c.HTTPAddr == "" {
		errs = append(errs, errors.New("pprof: needs http-addr"))
	}
	if c.MaxPacketBytes < c.MaxPayloadBytes+1024 {
		errs = append(errs, fmt.Errorf("max-packet-bytes (%d) must exceed max-payload-bytes (%d) by at least 1024 for topic and properties", c.MaxPacketBytes, c.MaxPayloadBytes))
	}
	if c.MaxPayloadBytes < c.MaxTextBytes+1024 {
		errs = append(errs, fmt.Errorf("max-payload-bytes (%d) must exceed max-text-bytes (%d) by at least 1024 for the envelope", c.MaxPayloadBytes, c.MaxTextBytes))
	}
	grants, err := acl.ParseRules(c.TopicGrants)
	if err != nil {
		errs = append(errs, fmt.Errorf("topic-grants: %w", err))
	}
	c.grants = grants
	if _, err := c.logLevel(); err != nil {
		errs = append(errs, err)
	}
	if c.RedisURL != "" {
		if err := cluster.ValidateURL(c.RedisURL); err != nil {
			errs = append(errs, fmt.Errorf("redis-url: %w", err))
		}
		if c.DatabaseURL == "" {
			// Nodes share the store: the embedded one is per process.
			errs = append(errs, errors.New("redis-url: cluster mode needs a database-url (PostgreSQL)"))
		}
	}
	if err := cluster.ValidateNodeID(c.RedisPrefix); err != nil {
		errs = append(errs, fmt.Errorf("redis-prefix: %w", err))
	}
	if c.RedisURL != "" {
		// The node id names the node's registry entries and channel.
		if err := cluster.ValidateNodeID(c.Security.NodeID); err != nil {
			errs = append(errs, fmt.Errorf("node-id: %w", err))
		}
	}
	if c.ClusterTTL < time.Second || c.ClusterTTL > 10*time.Minute {
		errs = append(errs, fmt.Errorf("cluster-ttl: %v is outside 1s..10m", c.ClusterTTL))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("log-format: %q is not text or json", c.LogFormat))
	}
	errs = append(errs, c.Security.validate()...)
	errs = append(errs, c.validateKeys()...)
	errs = append(errs, c.Media.validate(c.DataDir)...)
	errs = append(errs, c.validateHardening()...)
	return errors.Join(errs...)
}

func (c *Config) logLevel() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return 0, fmt.Errorf("log-level: %q is not debug, info, warn or error", c.LogLevel)
	}
	return l, nil
}

// NewLogger builds the process logger. Packet attributes are reduced to
// their type, topic and id: mochi logs whole packets, payloads included, on
// some error paths, and message bodies must never reach the logs.
func (c *Config) NewLogger(w io.Writer) *slog.Logger {
	level, _ := c.logLevel()
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: redactPackets}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
