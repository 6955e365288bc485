package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage"
)

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"no command", nil, "Commands:"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown global flag", []string{"--nope", "convs"}, "flag provided but not defined"},
		{"send without args", []string{"send"}, "usage: msgr send"},
		{"send without text", []string{"send", "bob"}, "usage: msgr send"},
		{"send conv without text", []string{"send", "--conv", "C"}, "usage: msgr send"},
		{"listen with args", []string{"listen", "x"}, "usage: msgr listen"},
		{"chat without peer", []string{"chat"}, "usage: msgr chat"},
		{"chat with both", []string{"chat", "--conv", "C", "bob"}, "usage: msgr chat"},
		{"history without conv", []string{"history"}, "usage: msgr history"},
		{"history bad n", []string{"history", "-n", "0", "bob"}, "-n must be between"},
		{"convs with args", []string{"convs", "x"}, "usage: msgr convs"},
		{"group alone", []string{"group"}, "usage: msgr group"},
		{"group unknown", []string{"group", "explode"}, `unknown group command "explode"`},
		{"group create without title", []string{"group", "create"}, "usage: msgr group create"},
		{"group add missing user", []string{"group", "add", "C"}, "usage: msgr group add"},
		{"group leave extra", []string{"group", "leave", "C", "D"}, "usage: msgr group leave"},
		{"group role missing role", []string{"group", "role", "C", "bob"}, "usage: msgr group role"},
		{"read without seq", []string{"read", "C"}, "usage: msgr read"},
		{"read bad seq", []string{"read", "C", "x"}, "seq must be a positive number"},
		{"read zero seq", []string{"read", "C", "0"}, "seq must be a positive number"},
		{"read extra", []string{"read", "C", "1", "2"}, "usage: msgr read"},
		{"receipts without conv", []string{"receipts"}, "usage: msgr receipts"},
		{"receipts extra", []string{"receipts", "C", "D"}, "usage: msgr receipts"},
		{"presence without users", []string{"presence"}, "usage: msgr presence"},
		{"settings bad presence", []string{"settings", "--presence", "friends"}, "--presence must be"},
		{"settings bad bool", []string{"settings", "--read-receipts=maybe"}, "invalid boolean"},
		{"settings extra", []string{"settings", "nobody"}, "usage: msgr settings"},
		{"send flag help", []string{"send", "-h"}, "Commands:"},
		{"no user", []string{"send", "bob", "hi"}, "no user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			env := func(string) string { return "" }
			code := run(context.Background(), tt.args, env, strings.NewReader(""), &stdout, &stderr)
			if code != exitUsage {
				t.Errorf("exit code %d, want %d; stderr: %s", code, exitUsage, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.stderr)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout: %q", stdout.String())
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"help"}, func(string) string { return "" }, strings.NewReader(""), &stdout, &stderr); code != exitOK {
		t.Fatalf("exit code %d", code)
	}
	if !strings.Contains(stdout.String(), "Commands:") {
		t.Fatalf("stdout %q", stdout.String())
	}
}

func TestReadPasswordFromStdin(t *testing.T) {
	tests := []struct {
		stdin, want string
		ok          bool
	}{
		{"s3cret\nrest\n", "s3cret", true},
		{"s3cret\r\n", "s3cret", true},
		{"no-newline", "no-newline", true},
		{"", "", false},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		e := &env{opts: &globals{user: "alice"}, stdout: &stdout, stderr: &stderr}
		e.stdin = newReader(tt.stdin)
		got, err := e.readPassword()
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("stdin %q: got %q, %v", tt.stdin, got, err)
		}
	}
}

func TestFormatMessage(t *testing.T) {
	msg := func(body string) protocol.Message {
		return protocol.Message{Conv: "C1", Seq: 7, From: "alice", Body: json.RawMessage(body)}
	}
	tests := []struct {
		body, want string
	}{
		{`{"type":"text","text":"hi bob"}`, "[C1] 7 alice: hi bob"},
		{`{"type":"text","text":"two\nlines"}`, "[C1] 7 alice: two ⏎ lines"},
		{`{"type":"image","url":"x"}`, "[C1] 7 alice: (unsupported message)"},
		{string(storage.ShreddedBody), "[C1] 7 alice: (message deleted)"},
		{`{"type":"system","event":"group_created","by":"alice","title":"Trip"}`, `[C1] 7 * alice created the group "Trip"`},
		{`{"type":"system","event":"member_added","by":"alice","user":"bob","role":"member"}`, "[C1] 7 * alice added bob"},
		{`{"type":"system","event":"member_added","by":"alice","user":"bob","role":"admin"}`, "[C1] 7 * alice added bob as admin"},
		{`{"type":"system","event":"member_removed","by":"alice","user":"bob"}`, "[C1] 7 * alice removed bob"},
		{`{"type":"system","event":"member_left","user":"bob"}`, "[C1] 7 * bob left"},
		{`{"type":"system","event":"role_changed","by":"alice","user":"bob","role":"admin"}`, "[C1] 7 * alice made bob admin"},
		{`{"type":"system","event":"pinned"}`, "[C1] 7 * (pinned)"},
		{`not json`, "[C1] 7 alice: (unreadable message)"},
	}
	for _, tt := range tests {
		if got := formatMessage(msg(tt.body)); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.body, got, tt.want)
		}
	}
}

func TestDescribeConv(t *testing.T) {
	cv := protocol.Conversation{ID: "C1", Kind: "group", Title: "Trip", Members: []protocol.Member{
		{User: "alice", Role: "owner"}, {User: "bob", Role: "member"}, {User: "carol", Role: "admin"},
	}}
	if got, want := describeConv(cv), `group C1 "Trip": alice (owner), bob, carol (admin)`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func newReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

func TestReceiptNews(t *testing.T) {
	var l receiptLog
	steps := []struct {
		r    protocol.Receipt
		want []string
	}{
		{protocol.Receipt{Conv: "C", User: "bob", Delivered: 3}, []string{"[C] ✓✓ delivered up to 3 to bob"}},
		{protocol.Receipt{Conv: "C", User: "bob", Delivered: 3}, nil}, // repeated
		{protocol.Receipt{Conv: "C", User: "bob", Delivered: 3, Read: 3}, []string{"[C] ✓✓ read up to 3 by bob"}},
		// Delivered and read at once, to the same point: read says it all.
		{protocol.Receipt{Conv: "C", User: "bob", Delivered: 5, Read: 5}, []string{"[C] ✓✓ read up to 5 by bob"}},
		{protocol.Receipt{Conv: "C", User: "bob", Delivered: 8, Read: 6}, []string{"[C] ✓✓ delivered up to 8 to bob", "[C] ✓✓ read up to 6 by bob"}},
		// Hidden reads (0) and older positions are no news.
		{protocol.Receipt{Conv: "C", User: "bob", Delivered: 7}, nil},
		{protocol.Receipt{Conv: "C", User: "carol", Delivered: 8}, []string{"[C] ✓✓ delivered up to 8 to carol"}},
		{protocol.Receipt{Conv: "D", User: "bob", Delivered: 1}, []string{"[D] ✓✓ delivered up to 1 to bob"}},
	}
	for i, s := range steps {
		if got := l.news(s.r); !slices.Equal(got, s.want) {
			t.Errorf("step %d %+v: got %q, want %q", i, s.r, got, s.want)
		}
	}
}

func TestFormatPresence(t *testing.T) {
	zone := time.FixedZone("X", 3600)
	now := time.Date(2026, 11, 29, 22, 0, 0, 0, zone)
	today := time.Date(2026, 11, 29, 12, 3, 0, 0, zone).UnixMilli()
	earlier := time.Date(2026, 11, 28, 21, 3, 0, 0, zone).UnixMilli()
	tests := []struct {
		p              protocol.Presence
		event, command string
	}{
		{protocol.Presence{User: "bob", Online: true}, "bob is online", "online"},
		{protocol.Presence{User: "bob", LastSeen: today}, "bob was last seen 12:03", "last seen 2026-11-29 12:03"},
		{protocol.Presence{User: "bob", LastSeen: earlier}, "bob was last seen 2026-11-28 21:03", "last seen 2026-11-28 21:03"},
		{protocol.Presence{User: "bob"}, "bob is offline", "offline"},
		{protocol.Presence{User: "bob", Hidden: true}, "bob does not share their presence", "hidden"},
	}
	for _, tt := range tests {
		if got := formatPresence(tt.p, now); got != tt.event {
			t.Errorf("formatPresence(%+v) = %q, want %q", tt.p, got, tt.event)
		}
		if got := describePresence(tt.p, zone); got != tt.command {
			t.Errorf("describePresence(%+v) = %q, want %q", tt.p, got, tt.command)
		}
	}
}
