package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	c, err := e.connect(ctx, p.print)
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
	p := &printer{w: e.stdout}
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
	}
	c, err := e.connect(ctx, func(m protocol.Message) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case conv == "":
			backlog = append(backlog, m)
		case m.Conv == conv:
			show(m)
		}
	})
	if err != nil {
		return err
	}
	defer c.Close()

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
			return c.Close()
		case text, ok := <-lines:
			if !ok {
				select {
				case err := <-readErr:
					return fmt.Errorf("reading stdin: %w", err)
				default:
				}
				return c.Close()
			}
			sctx, cancel := context.WithTimeout(ctx, e.opts.timeout)
			_, err := c.SendMessage(sctx, msgr.Outgoing{Conv: conv, Text: text})
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return c.Close()
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
		fmt.Fprintln(tw, "ID\tKIND\tTITLE\tLAST SEQ\tCREATED BY\tCREATED")
		for _, cv := range convs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", cv.ID, cv.Kind, cv.Title, cv.LastSeq, cv.CreatedBy,
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
