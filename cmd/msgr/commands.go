package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	msgr "github.com/msgrhq/msgr/clients/go"
	"github.com/msgrhq/msgr/protocol"
)

// commandFunc runs one subcommand with the arguments after its name.
type commandFunc func(ctx context.Context, e *env, args []string) error

func command(name string) commandFunc {
	switch name {
	case "send":
		return cmdSend
	case "listen":
		return cmdListen
	case "chat":
		return cmdChat
	case "history":
		return cmdHistory
	case "convs":
		return cmdConvs
	case "group":
		return cmdGroup
	case "read":
		return cmdRead
	case "receipts":
		return cmdReceipts
	case "presence":
		return cmdPresence
	case "settings":
		return cmdSettings
	case "admin":
		return cmdAdmin // admin.go
	case "send-file":
		return cmdSendFile
	case "save":
		return cmdSave
	case "help":
		return cmdHelp
	}
	return nil
}

func cmdHelp(_ context.Context, e *env, _ []string) error {
	fmt.Fprint(e.stdout, usageText)
	return nil
}

// oneShot runs f with a connected client and the command timeout.
func (e *env) oneShot(ctx context.Context, f func(context.Context, *msgr.Client) error) error {
	ctx, cancel := context.WithTimeout(ctx, e.opts.timeout)
	defer cancel()
	c, err := e.connect(ctx, nil)
	if err != nil {
		return err
	}
	err = f(ctx, c)
	return errors.Join(err, c.Close())
}

func cmdSend(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("send", e.opts)
	conv := fs.String("conv", "", "conversation `ID`")
	if err := parse(fs, args, 1, "send <user> <text...> | send --conv ID <text...>"); err != nil {
		return err
	}
	m := msgr.Outgoing{Conv: *conv}
	words := fs.Args()
	if m.Conv == "" {
		m.To, words = words[0], words[1:]
	}
	if len(words) == 0 {
		return usageErrorf("usage: msgr send <user> <text...> | send --conv ID <text...>")
	}
	m.Text = strings.Join(words, " ")
	return e.oneShot(ctx, func(ctx context.Context, c *msgr.Client) error {
		sent, err := c.SendMessage(ctx, m)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "✓ sent seq %d\n", sent.Seq)
		return nil
	})
}

func cmdListen(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("listen", e.opts)
	if err := parse(fs, args, 0, ""); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("usage: msgr listen")
	}
	p := &printer{w: e.stdout}
	c, err := e.connect(ctx, func(cfg *msgr.Config) {
		cfg.OnMessage = p.print
		cfg.OnReceipt = func(r protocol.Receipt) {
			if r.User != e.opts.user { // not one of my devices reading
				p.printReceipt(r)
			}
		}
		cfg.OnPresence = p.printPresence
		cfg.OnTyping = p.printTyping
	})
	if err != nil {
		return err
	}
	// The client syncs by itself on connecting; syncing here too makes a
	// failure to catch up visible.
	if err := c.Sync(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintf(e.stderr, "msgr: catching up failed: %v\n", err)
	}
	<-ctx.Done()
	return c.Close()
}

func cmdChat(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("chat", e.opts)
	convFlag := fs.String("conv", "", "conversation `ID`")
	if err := parse(fs, args, 0, ""); err != nil {
		return err
	}
	if (*convFlag == "") == (fs.NArg() == 0) || fs.NArg() > 1 {
		return usageErrorf("usage: msgr chat <user> | chat --conv ID")
	}

	// Messages arrive before the conversation is known; hold them back.
	// What is shown is marked read.
	p := &printer{w: e.stdout}
	marker := newReadMarker(e)
	var (
		mu      sync.Mutex
		conv    string
		backlog []protocol.Message
	)
	show := func(m protocol.Message) {
		if m.From == e.opts.user && m.Dev == e.opts.device {
			return // typed here
		}
		p.print(m)
		marker.mark(m.Conv, m.Seq)
	}
	c, err := e.connect(ctx, func(cfg *msgr.Config) {
		cfg.OnMessage = func(m protocol.Message) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case conv == "":
				backlog = append(backlog, m)
			case m.Conv == conv:
				show(m)
			}
		}
		cfg.OnTyping = func(t protocol.Typing) {
			mu.Lock()
			defer mu.Unlock()
			if t.Conv == conv {
				p.printTyping(t)
			}
		}
	})
	if err != nil {
		return err
	}
	defer c.Close()
	stopMarker := marker.start(ctx, c)
	defer stopMarker()
	finish := func() error {
		stopMarker() // before Close: the last read mark needs the connection
		return c.Close()
	}

	id := *convFlag
	if id == "" {
		rctx, cancel := context.WithTimeout(ctx, e.opts.timeout)
		direct, err := c.Direct(rctx, fs.Arg(0))
		cancel()
		if err != nil {
			return err
		}
		id = direct.ID
	}
	mu.Lock()
	conv = id
	for _, m := range backlog {
		if m.Conv == conv {
			show(m)
		}
	}
	backlog = nil
	mu.Unlock()
	fmt.Fprintf(e.stderr, "chatting in %s; type a message and press enter, end with Ctrl-D\n", conv)

	lines := make(chan string)
	readErr := make(chan error, 1)
	go func() {
		defer close(lines)
		for {
			line, err := e.stdin.ReadString('\n')
			if text := strings.TrimRight(line, "\r\n"); strings.TrimSpace(text) != "" {
				select {
				case lines <- text:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					readErr <- err
				}
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return finish()
		case text, ok := <-lines:
			if !ok {
				select {
				case err := <-readErr:
					return fmt.Errorf("reading stdin: %w", err)
				default:
				}
				return finish()
			}
			sctx, cancel := context.WithTimeout(ctx, e.opts.timeout)
			_, err := c.SendMessage(sctx, msgr.Outgoing{Conv: conv, Text: text})
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return finish()
				}
				return err
			}
		}
	}
}

func cmdHistory(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("history", e.opts)
	convFlag := fs.String("conv", "", "conversation `ID`")
	n := fs.Int("n", 20, "number of messages")
	before := fs.Int64("before", 0, "only messages with seq below `SEQ` (0: the newest)")
	if err := parse(fs, args, 0, ""); err != nil {
		return err
	}
	if (*convFlag == "") == (fs.NArg() == 0) || fs.NArg() > 1 {
		return usageErrorf("usage: msgr history <user> | history --conv ID [-n N] [--before SEQ]")
	}
	if *n < 1 || *n > protocol.MaxSyncLimit {
		return usageErrorf("history: -n must be between 1 and %d", protocol.MaxSyncLimit)
	}
	return e.oneShot(ctx, func(ctx context.Context, c *msgr.Client) error {
		conv := *convFlag
		if conv == "" {
			direct, err := c.Direct(ctx, fs.Arg(0))
			if err != nil {
				return err
			}
			conv = direct.ID
		}
		msgs, more, err := c.History(ctx, conv, *before, *n)
		if err != nil {
			return err
		}
		if more && len(msgs) > 0 {
			fmt.Fprintf(e.stderr, "(older messages: --before %d)\n", msgs[0].Seq)
		}
		p := &printer{w: e.stdout}
		for _, m := range msgs {
			p.print(m)
		}
		return nil
	})
}

func cmdConvs(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("convs", e.opts)
	n := fs.Int("n", 100, "number of conversations")
	if err := parse(fs, args, 0, ""); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("usage: msgr convs [-n N]")
	}
	return e.oneShot(ctx, func(ctx context.Context, c *msgr.Client) error {
		convs, err := c.Conversations(ctx, *n)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tKIND\tTITLE\tLAST SEQ\tUNREAD\tCREATED BY\tCREATED")
		for _, cv := range convs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", cv.ID, cv.Kind, cv.Title, cv.LastSeq, cv.Unread, cv.CreatedBy,
				time.UnixMilli(cv.Created).Format(time.DateTime))
		}
		return tw.Flush()
	})
}

func cmdGroup(ctx context.Context, e *env, args []string) error {
	const usage = "usage: msgr group create|add|remove|leave|role ..."
	if len(args) == 0 {
		return usageErrorf("%s", usage)
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("group "+sub, e.opts)
	var (
		want string
		call func(context.Context, *msgr.Client) (protocol.Conversation, error)
	)
	switch sub {
	case "create":
		want = "group create <title> <member...>"
		call = func(ctx context.Context, c *msgr.Client) (protocol.Conversation, error) {
			return c.CreateGroup(ctx, fs.Arg(0), fs.Args()[1:]...)
		}
	case "add":
		role := fs.String("role", msgr.RoleMember, "role of the new member: member or admin")
		want = "group add <conv> <user>"
		call = func(ctx context.Context, c *msgr.Client) (protocol.Conversation, error) {
			return c.AddMember(ctx, fs.Arg(0), fs.Arg(1), *role)
		}
	case "remove":
		want = "group remove <conv> <user>"
		call = func(ctx context.Context, c *msgr.Client) (protocol.Conversation, error) {
			return c.RemoveMember(ctx, fs.Arg(0), fs.Arg(1))
		}
	case "leave":
		want = "group leave <conv>"
		call = func(ctx context.Context, c *msgr.Client) (protocol.Conversation, error) {
			return c.Leave(ctx, fs.Arg(0))
		}
	case "role":
		want = "group role <conv> <user> <admin|member>"
		call = func(ctx context.Context, c *msgr.Client) (protocol.Conversation, error) {
			return c.SetRole(ctx, fs.Arg(0), fs.Arg(1), fs.Arg(2))
		}
	default:
		return usageErrorf("unknown group command %q; %s", sub, usage)
	}
	nargs := strings.Count(want, "<")
	if sub == "create" {
		nargs = 1 // members may be added later
	}
	if err := parse(fs, args, nargs, want); err != nil {
		return err
	}
	if sub != "create" && fs.NArg() > nargs {
		return usageErrorf("usage: msgr %s", want)
	}
	return e.oneShot(ctx, func(ctx context.Context, c *msgr.Client) error {
		cv, err := call(ctx, c)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "✓ %s\n", describeConv(cv))
		return nil
	})
}

// finalReadTimeout bounds marking read what chat showed last, on exit.
const finalReadTimeout = 5 * time.Second

// readMarker marks a conversation read up to the newest message shown. It
// works in the background, so that showing messages never waits for the
// broker, and a burst of messages becomes one request.
type readMarker struct {
	e    *env
	wake chan struct{}

	mu   sync.Mutex
	conv string
	seq  int64 // the newest message shown
}

func newReadMarker(e *env) *readMarker {
	return &readMarker{e: e, wake: make(chan struct{}, 1)}
}

// mark records that message seq of conv was shown.
func (r *readMarker) mark(conv string, seq int64) {
	r.mu.Lock()
	if seq > r.seq {
		r.conv, r.seq = conv, seq
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// start sends the marks with c until ctx is done or the returned function
// is called; that function sends what is left and waits.
func (r *readMarker) start(ctx context.Context, c *msgr.Client) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	var sent int64
	flush := func(ctx context.Context, timeout time.Duration) {
		r.mu.Lock()
		conv, seq := r.conv, r.seq
		r.mu.Unlock()
		if seq <= sent {
			return
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if err := c.MarkRead(ctx, conv, seq); err != nil {
			if ctx.Err() == nil {
				fmt.Fprintf(r.e.stderr, "msgr: marking read: %s\n", strings.TrimPrefix(err.Error(), "msgr: "))
			}
			return
		}
		sent = seq
	}
	go func() {
		defer close(done)
		for {
			select {
			case <-r.wake:
				flush(ctx, r.e.opts.timeout)
			case <-ctx.Done():
				flush(context.Background(), min(r.e.opts.timeout, finalReadTimeout))
				return
			}
		}
	}()
	return sync.OnceFunc(func() {
		cancel()
		<-done
	})
}

func cmdRead(ctx context.Context, e *env, args []string) error {
	const usage = "read <conv> <seq>"
	fs := newFlagSet("read", e.opts)
	if err := parse(fs, args, 2, usage); err != nil {
		return err
	}
	if fs.NArg() > 2 {
		return usageErrorf("usage: msgr %s", usage)
	}
	conv := fs.Arg(0)
	seq, err := strconv.ParseInt(fs.Arg(1), 10, 64)
	if err != nil || seq < 1 {
		return usageErrorf("read: seq must be a positive number, not %q", fs.Arg(1))
	}
	return e.oneShot(ctx, func(ctx context.Context, c *msgr.Client) error {
		if err := c.MarkRead(ctx, conv, seq); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "✓ read up to %d in %s\n", seq, conv)
		return nil
	})
}

func cmdReceipts(ctx context.Context, e *env, args []string) error {
	const usage = "receipts <conv>"
	fs := newFlagSet("receipts", e.opts)
	if err := parse(fs, args, 1, usage); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return usageErrorf("usage: msgr %s", usage)
	}
	return e.oneShot(ctx, func(ctx context.Context, c *msgr.Client) error {
		receipts, err := c.Receipts(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USER\tDELIVERED\tREAD")
		for _, r := range receipts {
			fmt.Fprintf(tw, "%s\t%d\t%d\n", r.User, r.Delivered, r.Read)
		}
		return tw.Flush()
	})
}

func cmdPresence(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("presence", e.opts)
	if err := parse(fs, args, 1, "presence <user...>"); err != nil {
		return err
	}
	return e.oneShot(ctx, func(ctx context.Context, c *msgr.Client) error {
		ps, err := c.Presence(ctx, fs.Args()...)
		if err != nil {
			return err
		}
		for _, p := range ps {
			fmt.Fprintf(e.stdout, "%s: %s\n", p.User, describePresence(p, time.Local))
		}
		return nil
	})
}

func cmdSettings(ctx context.Context, e *env, args []string) error {
	const usage = "settings [--presence everyone|contacts|nobody] [--read-receipts=true|false]"
	fs := newFlagSet("settings", e.opts)
	presence := fs.String("presence", "", "who sees your presence: everyone, contacts or nobody")
	readReceipts := fs.Bool("read-receipts", true, "share and see read receipts")
	if err := parse(fs, args, 0, usage); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("usage: msgr %s", usage)
	}
	switch *presence {
	case "", msgr.PresenceEveryone, msgr.PresenceContacts, msgr.PresenceNobody:
	default:
		return usageErrorf("settings: --presence must be everyone, contacts or nobody, not %q", *presence)
	}
	var receipts *bool
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "read-receipts" {
			receipts = readReceipts
		}
	})
	return e.oneShot(ctx, func(ctx context.Context, c *msgr.Client) error {
		var (
			s   protocol.Settings
			err error
		)
		if *presence == "" && receipts == nil {
			s, err = c.Settings(ctx)
		} else {
			s, err = c.SetSettings(ctx, *presence, receipts)
		}
		if err != nil {
			return err
		}
		onOff := map[bool]string{true: "on", false: "off"}
		fmt.Fprintf(e.stdout, "presence: %s\nread receipts: %s\n", s.Presence, onOff[s.ReadReceipts])
		return nil
	})
}
