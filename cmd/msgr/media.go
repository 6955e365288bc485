package main

import (
	"context"
	"fmt"
	"strings"

	msgr "github.com/msgrhq/msgr/clients/go"
	"github.com/msgrhq/msgr/protocol"
)

// cmdSendFile uploads a file and sends it as a media message.
func cmdSendFile(ctx context.Context, e *env, args []string) error {
	const usage = "send-file <user> <path> [caption...] | send-file --conv ID <path> [caption...]"
	fs := newFlagSet("send-file", e.opts)
	conv := fs.String("conv", "", "conversation `ID`")
	if err := parse(fs, args, 1, usage); err != nil {
		return err
	}
	to, words := "", fs.Args()
	if *conv == "" {
		to, words = words[0], words[1:]
	}
	if len(words) == 0 {
		return usageErrorf("usage: msgr %s", usage)
	}
	path, caption := words[0], strings.Join(words[1:], " ")
	return e.oneShot(ctx, func(ctx context.Context, c *msgr.Client) error {
		m, sent, err := c.SendFile(ctx, *conv, to, path, caption)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "✓ sent %s as media %s (%s) seq %d\n", m.Name, m.ID, describeMedia(&m), sent.Seq)
		return nil
	})
}

// cmdSave downloads an attachment into a file.
func cmdSave(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("save", e.opts)
	if err := parse(fs, args, 2, "save <media-id> <path>"); err != nil {
		return err
	}
	id, path := fs.Arg(0), fs.Arg(1)
	return e.oneShot(ctx, func(ctx context.Context, c *msgr.Client) error {
		n, err := c.SaveAttachment(ctx, id, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "✓ saved %d bytes to %s\n", n, path)
		return nil
	})
}

// describeMedia summarises a media for one output line.
func describeMedia(m *protocol.Media) string {
	parts := []string{m.Type, humanSize(m.Size)}
	if m.Width > 0 {
		parts = append(parts, fmt.Sprintf("%dx%d", m.Width, m.Height))
	}
	return strings.Join(parts, ", ")
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// formatMedia is a media message's output line.
func formatMedia(m protocol.Message, b protocol.Body) string {
	if b.Media == nil {
		return fmt.Sprintf("[%s] %d %s: (media message without media)", m.Conv, m.Seq, m.From)
	}
	line := fmt.Sprintf("[%s] %d %s: [file %s (%s) — msgr save %s FILE]", m.Conv, m.Seq, m.From, oneLine(b.Media.Name), describeMedia(b.Media), b.Media.ID)
	if b.Text != "" {
		line += " " + oneLine(b.Text)
	}
	return line
}
