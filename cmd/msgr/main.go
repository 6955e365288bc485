// Command msgr is a command-line chat client for the msgr broker.
//
// Usage:
//
//	msgr [global flags] <command> [flags] [args]
//
// Run "msgr help" for the commands and flags.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	msgr "github.com/msgrhq/msgr/clients/go"
	"golang.org/x/term"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

const usageText = `msgr is a command-line client for the msgr chat broker.

Usage:
  msgr [global flags] <command> [flags] [args]

Commands:
  send <user> <text...>          send text to the direct conversation with user
  send --conv ID <text...>       send text to a conversation
  send-file <user> <path> [caption...]
                                 upload a file and send it (also --conv ID); images get a
                                 thumbnail that recipients see inline
  save <media-id> <path>         download an attachment you received (or sent) into path
  listen                         print incoming messages until interrupted, missed ones first,
                                 and receipts of yours, contacts' presence, who is typing
  chat <user> | chat --conv ID   send the lines read from stdin, print the conversation's
                                 messages and mark them read
  history <user> | --conv ID     print the latest messages of a conversation (-n 20, --before SEQ)
  convs                          list your conversations with their unread counts (-n 100)
  read <conv> <seq>              mark a conversation read up to seq
  receipts <conv>                show how far each member has received and read a conversation
  presence <user...>             show whether users are online or when they were last seen
  settings                       show your privacy settings; change them with
                                 --presence everyone|contacts|nobody (who sees your presence)
                                 --read-receipts=true|false (share and see read receipts)
  group create <title> <member...>
  group add <conv> <user>        add a member (--role admin to make them admin)
  group remove <conv> <user>
  group leave <conv>
  group role <conv> <user> <admin|member>
  admin <command>                operate a broker through its admin API: users, devices,
                                 conversations, clients, bans, stats ("msgr admin help")

Global flags (also accepted after the command):
  --server URL      broker, mqtt://host:port or ws://host:port/ (MSGR_SERVER, default mqtt://127.0.0.1:1883)
  --http URL        broker's HTTP API for files (MSGR_HTTP, default http://127.0.0.1:8080)
  --user NAME       your user id (MSGR_USER)
  --device NAME     this device's id (MSGR_DEVICE, default cli)
  --password PASS   your password (MSGR_PASSWORD; if unset it is read from the terminal or a line of stdin)
  --timeout D       how long a command may take (default 30s)
  -v                log diagnostics to stderr

Exit status: 0 on success, 1 on error, 2 on usage errors.
`

// errUsage marks command-line mistakes; run prints usage and exits 2.
var errUsage = errors.New("usage")

func usageErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}

// env holds what a command runs with.
type env struct {
	stdin  *bufio.Reader
	term   *os.File // stdin when it is a terminal, for reading the password without echo
	stdout io.Writer
	stderr io.Writer
	opts   *globals
	getenv func(string) string
}

// globals are the flags every command accepts.
type globals struct {
	server, user, device, password string
	http                           string
	timeout                        time.Duration
	verbose                        bool
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.server, "server", g.server, "broker URL")
	fs.StringVar(&g.http, "http", g.http, "broker HTTP API URL")
	fs.StringVar(&g.user, "user", g.user, "your user id")
	fs.StringVar(&g.device, "device", g.device, "this device's id")
	fs.StringVar(&g.password, "password", g.password, "your password")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "how long a command may take")
	fs.BoolVar(&g.verbose, "v", g.verbose, "log diagnostics to stderr")
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{
		server:   getenv("MSGR_SERVER"),
		user:     getenv("MSGR_USER"),
		device:   getenv("MSGR_DEVICE"),
		password: getenv("MSGR_PASSWORD"),
		http:     getenv("MSGR_HTTP"),
		timeout:  30 * time.Second,
	}
	if g.http == "" {
		g.http = "http://127.0.0.1:8080"
	}
	if g.server == "" {
		g.server = "mqtt://127.0.0.1:1883"
	}
	if g.device == "" {
		g.device = "cli"
	}
	e := &env{stdin: bufio.NewReader(stdin), stdout: stdout, stderr: stderr, opts: g, getenv: getenv}
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		e.term = f
	}

	fs := newFlagSet("msgr", g)
	if err := fs.Parse(args); err != nil {
		return usageExit(stderr, err)
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	name, rest := fs.Arg(0), fs.Args()[1:]
	cmd := command(name)
	if cmd == nil {
		return usageExit(stderr, usageErrorf("unknown command %q", name))
	}
	if err := cmd(ctx, e, rest); err != nil {
		if errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
			return usageExit(stderr, err)
		}
		// The SDK's errors carry its "msgr: " prefix already.
		fmt.Fprintf(stderr, "msgr: %s\n", strings.TrimPrefix(err.Error(), "msgr: "))
		return exitError
	}
	return exitOK
}

func usageExit(stderr io.Writer, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	msg := strings.TrimPrefix(err.Error(), errUsage.Error()+": ")
	fmt.Fprintf(stderr, "msgr: %s\nRun 'msgr help' for usage.\n", msg)
	return exitUsage
}

// newFlagSet returns a flag set that also takes the global flags and
// reports errors to run instead of printing them.
func newFlagSet(name string, g *globals) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.register(fs)
	return fs
}

// parse parses a command's flags and checks its argument count; usage
// is the command's synopsis.
func parse(fs *flag.FlagSet, args []string, minArgs int, usage string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErrorf("%s: %v", fs.Name(), err)
	}
	if fs.NArg() < minArgs {
		return usageErrorf("usage: msgr %s", usage)
	}
	return nil
}

// connect dials the broker as the configured user, reading the password
// if it was not given. handlers, if not nil, sets the event handlers.
func (e *env) connect(ctx context.Context, handlers func(*msgr.Config)) (*msgr.Client, error) {
	g := e.opts
	if g.user == "" {
		return nil, usageErrorf("no user: set --user or MSGR_USER")
	}
	if g.password == "" {
		pw, err := e.readPassword()
		if err != nil {
			return nil, err
		}
		g.password = pw
	}
	logger := slog.New(slog.DiscardHandler)
	if g.verbose {
		logger = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg := msgr.Config{
		ServerURL: g.server,
		User:      g.user,
		Device:    g.device,
		Password:  g.password,
		HTTPURL:   g.http,
		Logger:    logger,
	}
	if handlers != nil {
		handlers(&cfg)
	}
	dctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	return msgr.Dial(dctx, cfg)
}

func (e *env) readPassword() (string, error) {
	if e.term != nil {
		fmt.Fprintf(e.stderr, "Password for %s: ", e.opts.user)
		pw, err := term.ReadPassword(int(e.term.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", fmt.Errorf("reading password: %w", err)
		}
		return string(pw), nil
	}
	line, err := e.stdin.ReadString('\n')
	if err != nil && (!errors.Is(err, io.EOF) || line == "") {
		return "", errors.New("no password: set --password or MSGR_PASSWORD, or write it as the first line of stdin")
	}
	return strings.TrimRight(line, "\r\n"), nil
}
