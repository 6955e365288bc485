package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/broker/brokertest"
)

// TestAdminCommands drives a real broker's admin API through msgr admin.
func TestAdminCommands(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(tokenFile, []byte("cli-admin-token-0123456789abcdefghij\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := brokertest.Start(t, brokertest.WithConfig(func(c *broker.Config) { c.Security.AdminTokenFile = tokenFile }))
	env := map[string]string{"MSGR_ADMIN_URL": "http://" + b.HTTPAddr, "MSGR_ADMIN_TOKEN_FILE": tokenFile, "MSGR_SERVER": "mqtt://" + b.MQTTAddr}
	admin := func(stdin string, args ...string) (string, string, int) {
		t.Helper()
		var out, errOut bytes.Buffer
		code := run(context.Background(), append([]string{"admin"}, args...), func(k string) string { return env[k] },
			strings.NewReader(stdin), &out, &errOut)
		return out.String(), errOut.String(), code
	}
	ok := func(stdin string, args ...string) string {
		t.Helper()
		out, errOut, code := admin(stdin, args...)
		if code != exitOK {
			t.Fatalf("msgr admin %v: exit %d: %s", args, code, errOut)
		}
		return out
	}

	var u struct {
		ID       string
		Disabled bool
	}
	if err := json.Unmarshal([]byte(ok("pw-carol\n", "user", "add", "carol")), &u); err != nil || u.ID != "carol" {
		t.Fatalf("user add: %+v %v", u, err)
	}
	// The user exists for real: carol can chat with the password given.
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"convs", "--user", "carol", "--password", "pw-carol"},
		func(k string) string { return env[k] }, strings.NewReader(""), &out, &errOut); code != exitOK {
		t.Fatalf("carol cannot use the CLI: %s", errOut.String())
	}
	if !strings.Contains(ok("", "users"), `"carol"`) {
		t.Error("users does not list carol")
	}
	if err := json.Unmarshal([]byte(ok("", "user", "disable", "carol")), &u); err != nil || !u.Disabled {
		t.Fatalf("user disable: %+v %v", u, err)
	}
	ok("", "user", "enable", "carol")
	ok("new-pw\n", "user", "passwd", "carol")
	if !strings.Contains(ok("", "devices", "carol"), `"cli"`) {
		t.Error("devices does not list carol/cli")
	}
	ok("", "revoke", "carol", "cli")
	if !strings.Contains(ok("", "ban", "ip", "192.0.2.9", "--reason", "test", "--for", "1h"), `"192.0.2.9/32"`) {
		t.Error("ban did not answer the canonical prefix")
	}
	if !strings.Contains(ok("", "bans"), `"test"`) {
		t.Error("bans does not list the ban")
	}
	if ok("", "unban", "ip", "192.0.2.9/32") != "ok\n" {
		t.Error("unban did not say ok")
	}
	if !strings.Contains(ok("", "stats"), `"clients_connected"`) {
		t.Error("stats has no clients_connected")
	}
	ok("", "clients")
	ok("", "convs", "-n", "5")

	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"user", "show", "nobody"}, exitError, "user nobody: not found (404 not_found)"},
		{[]string{"kick", "nobody/phone"}, exitError, "not connected"},
		{[]string{"frob"}, exitUsage, `unknown admin command "frob"`},
		{[]string{"user", "add"}, exitUsage, "usage: msgr admin user"},
		{[]string{"ban", "planet", "mars"}, exitUsage, "usage: msgr admin ban"},
	} {
		_, errOut, code := admin("", tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("msgr admin %v: exit %d %q, want %d containing %q", tc.args, code, errOut, tc.code, tc.msg)
		}
	}
	// A wrong token is refused with the server's explanation.
	env["MSGR_ADMIN_TOKEN_FILE"] = ""
	env["MSGR_ADMIN_TOKEN"] = "wrong-token-wrong-token-wrong-token"
	if _, errOut, code := admin("", "users"); code != exitError || !strings.Contains(errOut, "admin token required") {
		t.Errorf("wrong token: exit %d %q", code, errOut)
	}
	env["MSGR_ADMIN_TOKEN"] = ""
	if _, errOut, code := admin("", "users"); code != exitUsage || !strings.Contains(errOut, "no admin token") {
		t.Errorf("no token: exit %d %q", code, errOut)
	}
}
