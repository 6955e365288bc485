package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/msgrhq/msgr/protocol"
)

// printer writes messages as "[conv] seq from: text", one per line.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) print(m protocol.Message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.w, formatMessage(m))
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
