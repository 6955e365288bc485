package broker_test

import (
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/msgrhq/msgr/broker"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*broker.Config)
		wantErr []string // substrings of the error; none means valid
	}{
		{name: "defaults", change: func(*broker.Config) {}},
		{name: "listeners disabled", change: func(c *broker.Config) { c.WSAddr, c.HTTPAddr = "", "" }},
		{name: "any host", change: func(c *broker.Config) { c.MQTTAddr = ":1883" }},
		{name: "postgres", change: func(c *broker.Config) { c.DataDir, c.DatabaseURL, c.MasterKeyFile = "", "postgres://u@h/db", "/k" }},
		{name: "postgresql scheme", change: func(c *broker.Config) { c.DatabaseURL, c.MasterKey = "postgresql://u@h/db", "k" }},
		{name: "postgres without master key", change: func(c *broker.Config) { c.DatabaseURL = "postgres://u@h/db" },
			wantErr: []string{"master key: required with database-url", "msgrd keys generate"}},
		{name: "master key twice", change: func(c *broker.Config) { c.MasterKeyFile, c.MasterKey = "/k", "k" },
			wantErr: []string{"master-key-file and MSGR_MASTER_KEY are both set"}},
		{name: "grants", change: func(c *broker.Config) { c.TopicGrants = "sensors/#=rw,status/+=r" }},
		{name: "json debug", change: func(c *broker.Config) { c.LogFormat, c.LogLevel = "json", "debug" }},

		{name: "no mqtt address", change: func(c *broker.Config) { c.MQTTAddr = "" },
			wantErr: []string{`mqtt-addr: "" is not a host:port address`}},
		{name: "mqtt address without port", change: func(c *broker.Config) { c.MQTTAddr = "localhost" },
			wantErr: []string{`mqtt-addr: "localhost" is not a host:port address`}},
		{name: "ws address", change: func(c *broker.Config) { c.WSAddr = "8083" },
			wantErr: []string{`ws-addr: "8083" is not a host:port address`}},
		{name: "http address empty port", change: func(c *broker.Config) { c.HTTPAddr = "127.0.0.1:" },
			wantErr: []string{`http-addr: "127.0.0.1:" is not a host:port address`}},
		{name: "no store", change: func(c *broker.Config) { c.DataDir = "" },
			wantErr: []string{"data-dir: required when no database-url is set"}},
		{name: "database url scheme", change: func(c *broker.Config) { c.DatabaseURL = "mysql://u@h/db" },
			wantErr: []string{"database-url: must start with postgres://"}},
		{name: "zero group", change: func(c *broker.Config) { c.MaxGroupMembers = 0 },
			wantErr: []string{"max-group-members: 0 is outside 1..100000"}},
		{name: "huge group", change: func(c *broker.Config) { c.MaxGroupMembers = 100_001 },
			wantErr: []string{"max-group-members: 100001 is outside"}},
		{name: "negative text", change: func(c *broker.Config) { c.MaxTextBytes = -1 },
			wantErr: []string{"max-text-bytes: -1 is outside"}},
		{name: "payload too small for text", change: func(c *broker.Config) { c.MaxTextBytes, c.MaxPayloadBytes = 4096, 4096 },
			wantErr: []string{"max-payload-bytes (4096) must exceed max-text-bytes (4096) by at least 1024"}},
		{name: "huge payload", change: func(c *broker.Config) { c.MaxPayloadBytes = 16<<20 + 1 },
			wantErr: []string{"max-payload-bytes: 16777217 is outside"}},
		{name: "writes pending", change: func(c *broker.Config) { c.WritesPending = 0 },
			wantErr: []string{"writes-pending: 0 is outside"}},
		{name: "log level", change: func(c *broker.Config) { c.LogLevel = "loud" },
			wantErr: []string{`log-level: "loud" is not debug, info, warn or error`}},
		{name: "pprof without http", change: func(c *broker.Config) { c.Pprof, c.HTTPAddr = true, "" },
			wantErr: []string{"pprof: needs http-addr"}},
		{name: "media quota below the upload limit", change: func(c *broker.Config) { c.Media.DailyBytes = c.Media.MaxBytes - 1 },
			wantErr: []string{"media-daily-bytes:", "below media-max-bytes"}},
		{name: "no media quota", change: func(c *broker.Config) { c.Media.DailyBytes = 0 }},
		{name: "proxy protocol sources", change: func(c *broker.Config) { c.ProxyProtocolFrom = "10.0.0.1, 10.1.0.0/16,::1" }},
		{name: "proxy protocol bad source", change: func(c *broker.Config) { c.ProxyProtocolFrom = "10.0.0.1,lb.example" },
			wantErr: []string{`proxy-protocol-from: "lb.example" is neither an address nor a CIDR prefix`}},
		{name: "proxy protocol bad prefix", change: func(c *broker.Config) { c.ProxyProtocolFrom = "10.0.0.0/33" },
			wantErr: []string{`proxy-protocol-from: "10.0.0.0/33"`}},
		{name: "log format", change: func(c *broker.Config) { c.LogFormat = "xml" },
			wantErr: []string{`log-format: "xml" is not text or json`}},

		{name: "grant everything", change: func(c *broker.Config) { c.TopicGrants = "#=rw" },
			wantErr: []string{`topic-grants: topic grant "#=rw"`, "chat namespace is never granted"}},
		{name: "grant chat namespace", change: func(c *broker.Config) { c.TopicGrants = "msgr/#=r" },
			wantErr: []string{`topic grant "msgr/#=r"`, "chat namespace is never granted"}},
		{name: "grant leading wildcard", change: func(c *broker.Config) { c.TopicGrants = "+/x=r" },
			wantErr: []string{`topic grant "+/x=r"`, "the first level must be a literal"}},
		{name: "grant sys", change: func(c *broker.Config) { c.TopicGrants = "$SYS/#=r" },
			wantErr: []string{`topic grant "$SYS/#=r"`, "topics starting with '$' cannot be granted"}},
		{name: "grant bad mode", change: func(c *broker.Config) { c.TopicGrants = "sensors/#=rwx" },
			wantErr: []string{`topic grant "sensors/#=rwx"`, "mode must be r, w or rw"}},
		{name: "grant invalid filter", change: func(c *broker.Config) { c.TopicGrants = "sensors/#/x=r" },
			wantErr: []string{`topic grant "sensors/#/x=r"`, "not a valid MQTT topic filter"}},

		// Every problem is reported at once.
		{name: "several", change: func(c *broker.Config) {
			c.MQTTAddr, c.LogFormat, c.TopicGrants = "nope", "xml", "msgr/#=r"
		}, wantErr: []string{"mqtt-addr:", "log-format:", "topic-grants:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := broker.DefaultConfig()
			tt.change(&cfg)
			err := cfg.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted %+v", cfg)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestConfigParse(t *testing.T) {
	env := func(vars map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, c broker.Config)
		wantErr string
	}{
		{
			name: "defaults",
			check: func(t *testing.T, c broker.Config) {
				d := broker.DefaultConfig()
				if c.MQTTAddr != d.MQTTAddr || c.WSAddr != d.WSAddr || c.HTTPAddr != d.HTTPAddr || c.DataDir != d.DataDir ||
					c.DatabaseURL != "" || c.AllowAnonymous || c.TopicGrants != "" || c.MaxGroupMembers != d.MaxGroupMembers ||
					c.MaxTextBytes != d.MaxTextBytes || c.MaxPayloadBytes != d.MaxPayloadBytes || c.WritesPending != d.WritesPending ||
					c.LogLevel != d.LogLevel || c.LogFormat != d.LogFormat {
					t.Errorf("got %+v, want the defaults %+v", c, d)
				}
			},
		},
		{
			name: "environment",
			env: map[string]string{
				"MSGR_MQTT_ADDR": "127.0.0.1:1999", "MSGR_ALLOW_ANONYMOUS": "true",
				"MSGR_TOPIC_GRANTS": "sensors/#=rw", "MSGR_MAX_TEXT_BYTES": "2048",
				"MSGR_LOG_FORMAT": "json", "MSGR_DATA_DIR": "/var/lib/msgr",
			},
			check: func(t *testing.T, c broker.Config) {
				if c.MQTTAddr != "127.0.0.1:1999" || !c.AllowAnonymous || c.TopicGrants != "sensors/#=rw" ||
					c.MaxTextBytes != 2048 || c.LogFormat != "json" || c.DataDir != "/var/lib/msgr" {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "flags win over the environment",
			args: []string{"-mqtt-addr", "127.0.0.1:2000", "--max-text-bytes=1000", "-allow-anonymous=false"},
			env:  map[string]string{"MSGR_MQTT_ADDR": "127.0.0.1:1999", "MSGR_MAX_TEXT_BYTES": "2048", "MSGR_ALLOW_ANONYMOUS": "true", "MSGR_LOG_LEVEL": "warn"},
			check: func(t *testing.T, c broker.Config) {
				if c.MQTTAddr != "127.0.0.1:2000" || c.MaxTextBytes != 1000 || c.AllowAnonymous || c.LogLevel != "warn" {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "a flag disables a listener",
			args: []string{"-ws-addr=", "-http-addr="},
			check: func(t *testing.T, c broker.Config) {
				if c.WSAddr != "" || c.HTTPAddr != "" {
					t.Errorf("got %+v", c)
				}
			},
		},
		{name: "bad env int", env: map[string]string{"MSGR_MAX_TEXT_BYTES": "lots"}, wantErr: `MSGR_MAX_TEXT_BYTES="lots"`},
		{name: "bad env bool", env: map[string]string{"MSGR_ALLOW_ANONYMOUS": "maybe"}, wantErr: `MSGR_ALLOW_ANONYMOUS="maybe"`},
		{name: "bad env value", env: map[string]string{"MSGR_LOG_LEVEL": "loud"}, wantErr: `log-level: "loud"`},
		{name: "bad env grant", env: map[string]string{"MSGR_TOPIC_GRANTS": "#=rw"}, wantErr: "chat namespace is never granted"},
		{name: "bad flag int", args: []string{"-max-group-members", "many"}, wantErr: "max-group-members"},
		{name: "unknown flag", args: []string{"-colour"}, wantErr: "flag provided but not defined: -colour"},
		{name: "bad flag value", args: []string{"-mqtt-addr", "nowhere"}, wantErr: `mqtt-addr: "nowhere"`},
		{name: "flag fixes a bad env value", args: []string{"-log-level", "debug"}, env: map[string]string{"MSGR_LOG_LEVEL": "loud"},
			check: func(t *testing.T, c broker.Config) {
				if c.LogLevel != "debug" {
					t.Errorf("log level %q", c.LogLevel)
				}
			}},
		{name: "help", args: []string{"-h"}, wantErr: flag.ErrHelp.Error()},
		{name: "empty env disables a listener", env: map[string]string{"MSGR_WS_ADDR": "", "MSGR_HTTP_ADDR": ""},
			check: func(t *testing.T, c broker.Config) {
				if c.WSAddr != "" || c.HTTPAddr != "" {
					t.Errorf("ws %q http %q, want both disabled", c.WSAddr, c.HTTPAddr)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := broker.DefaultConfig()
			fs := flag.NewFlagSet("msgrd", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			err := cfg.Parse(fs, tt.args, env(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, cfg)
		})
	}
}

// Every flag is read from the MSGR_* variable its usage names.
func TestConfigEveryFlagHasEnv(t *testing.T) {
	asked := map[string]bool{}
	cfg := broker.DefaultConfig()
	fs := flag.NewFlagSet("msgrd", flag.ContinueOnError)
	if err := cfg.Parse(fs, nil, func(k string) (string, bool) { asked[k] = true; return "", false }); err != nil {
		t.Fatal(err)
	}
	// The master key itself has no flag, to keep it out of process listings.
	if !asked["MSGR_MASTER_KEY"] {
		t.Error("MSGR_MASTER_KEY is never read")
	}
	delete(asked, "MSGR_MASTER_KEY")
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		name := "MSGR_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if !asked[name] {
			t.Errorf("flag -%s: %s is never read", f.Name, name)
		}
		if !strings.Contains(f.Usage, "("+name+")") {
			t.Errorf("flag -%s: usage does not name %s: %q", f.Name, name, f.Usage)
		}
	})
	if n != len(asked) {
		t.Errorf("%d flags, %d environment variables read: %v", n, len(asked), asked)
	}
}
