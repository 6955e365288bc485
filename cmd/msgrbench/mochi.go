package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// mochiCommand runs bare mochi-mqtt v2.7.9, the broker msgr embeds, with
// its defaults and an allow-all auth hook: the reference for what msgr's
// hooks, ACL and chat core cost on top of it. It stores nothing.
func mochiCommand(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("msgrbench mochi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:1884", "MQTT/TCP listen address (loopback only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkLoopback("-addr", *addr); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := mqtt.New(&mqtt.Options{Logger: log})
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	if err := srv.AddListener(listeners.NewNet("tcp", ln)); err != nil {
		return err
	}
	if err := srv.Serve(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "msgrbench: bare mochi-mqtt v2.7.9 (defaults) listening on %s\n", ln.Addr())
	<-ctx.Done()
	return srv.Close()
}

// allowAll is mochi's auth.AllowHook (its package pulls in a YAML
// dependency msgr does not otherwise need): every client may connect,
// publish and subscribe anywhere.
type allowAll struct{ mqtt.HookBase }

func (h *allowAll) ID() string { return "allow-all" }

func (h *allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (h *allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (h *allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }
