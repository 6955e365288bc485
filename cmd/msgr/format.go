package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/msgrhq/msgr/protocol"
)

// printer writes messages as "[conv] seq from: text", one per line, and
// the notices about them.
type printer struct {
	mu sync.Mutex
	w  io.Writer

	now      func() time.Time
	receipts receiptLog
}

func (p *printer) print(m protocol.Message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.w, formatMessage(m))
}

// printReceipt writes what moved in a receipt of another member.
func (p *printer) printReceipt(r protocol.Receipt) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, line := range p.receipts.news(r) {
		fmt.Fprintln(p.w, line)
	}
}

func (p *printer) printPresence(pr protocol.Presence) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now
	if p.now != nil {
		now = p.now
	}
	fmt.Fprintln(p.w, formatPresence(pr, now()))
}

func (p *printer) printTyping(t protocol.Typing) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "[%s] %s is typing…\n", t.Conv, t.User)
}

// receiptLog remembers the last receipt of each member of each
// conversation, to tell what a new one changes.
type receiptLog map[[2]string]protocol.Receipt

// news returns lines for what r moved: "[conv] ✓✓ delivered up to N to
// bob", "[conv] ✓✓ read up to N by bob". A read that reaches as far as
// the delivery says both.
func (l *receiptLog) news(r protocol.Receipt) []string {
	if *l == nil {
		*l = make(receiptLog)
	}
	key := [2]string{r.Conv, r.User}
	prev := (*l)[key]
	(*l)[key] = protocol.Receipt{Conv: r.Conv, User: r.User, Delivered: max(prev.Delivered, r.Delivered), Read: max(prev.Read, r.Read)}
	readMoved := r.Read > prev.Read
	var lines []string
	if r.Delivered > prev.Delivered && (!readMoved || r.Delivered > r.Read) {
		lines = append(lines, fmt.Sprintf("[%s] ✓✓ delivered up to %d to %s", r.Conv, r.Delivered, r.User))
	}
	if readMoved {
		lines = append(lines, fmt.Sprintf("[%s] ✓✓ read up to %d by %s", r.Conv, r.Read, r.User))
	}
	return lines
}

// formatPresence describes a presence change: "bob is online", "bob was
// last seen 21:03" (with the date unless it is today).
func formatPresence(p protocol.Presence, now time.Time) string {
	switch {
	case p.Hidden:
		return fmt.Sprintf("%s does not share their presence", p.User)
	case p.Online:
		return fmt.Sprintf("%s is online", p.User)
	case p.LastSeen == 0:
		return fmt.Sprintf("%s is offline", p.User)
	}
	seen := time.UnixMilli(p.LastSeen).In(now.Location())
	layout := "2006-01-02 15:04"
	if y, m, d := seen.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		layout = "15:04"
	}
	return fmt.Sprintf("%s was last seen %s", p.User, seen.Format(layout))
}

// describePresence is a user's presence for the presence command:
// "online", "last seen 2026-11-29 21:03", "offline" (never seen) or
// "hidden".
func describePresence(p protocol.Presence, loc *time.Location) string {
	switch {
	case p.Hidden:
		return "hidden"
	case p.Online:
		return "online"
	case p.LastSeen == 0:
		return "offline"
	}
	return "last seen " + time.UnixMilli(p.LastSeen).In(loc).Format("2006-01-02 15:04")
}

func formatMessage(m protocol.Message) string {
	var b protocol.Body
	if err := json.Unmarshal(m.Body, &b); err != nil {
		return fmt.Sprintf("[%s] %d %s: (unreadable message)", m.Conv, m.Seq, m.From)
	}
	switch b.Type {
	case protocol.BodyText:
		return fmt.Sprintf("[%s] %d %s: %s", m.Conv, m.Seq, m.From, oneLine(b.Text))
	case protocol.BodySystem:
		return fmt.Sprintf("[%s] %d * %s", m.Conv, m.Seq, describeSystem(b))
	case protocol.BodyMedia:
		return formatMedia(m, b)
	case protocol.BodyShredded:
		return fmt.Sprintf("[%s] %d %s: (message deleted)", m.Conv, m.Seq, m.From)
	default:
		return fmt.Sprintf("[%s] %d %s: (unsupported message)", m.Conv, m.Seq, m.From)
	}
}

// oneLine keeps a multi-line text on its output line, so that every output
// line is one message.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ⏎ ", "\n", " ⏎ ", "\r", " ⏎ ").Replace(s)
}

func describeSystem(b protocol.Body) string {
	switch b.Event {
	case protocol.SysGroupCreated:
		return fmt.Sprintf("%s created the group %q", b.By, b.Title)
	case protocol.SysMemberAdded:
		if b.Role != "" && b.Role != "member" {
			return fmt.Sprintf("%s added %s as %s", b.By, b.User, b.Role)
		}
		return fmt.Sprintf("%s added %s", b.By, b.User)
	case protocol.SysMemberRemoved:
		return fmt.Sprintf("%s removed %s", b.By, b.User)
	case protocol.SysMemberLeft:
		return fmt.Sprintf("%s left", b.User)
	case protocol.SysRoleChanged:
		return fmt.Sprintf("%s made %s %s", b.By, b.User, b.Role)
	default:
		return fmt.Sprintf("(%s)", b.Event)
	}
}

// describeConv summarises a conversation: "group ID "title": alice (owner), bob".
func describeConv(cv protocol.Conversation) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s", cv.Kind, cv.ID)
	if cv.Title != "" {
		fmt.Fprintf(&sb, " %q", cv.Title)
	}
	for i, m := range cv.Members {
		if i == 0 {
			sb.WriteString(": ")
		} else {
			sb.WriteString(", ")
		}
		sb.WriteString(m.User)
		if m.Role != "" && m.Role != "member" {
			fmt.Fprintf(&sb, " (%s)", m.Role)
		}
	}
	return sb.String()
}
