package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/msgrhq/msgr/broker/brokertest"
)

func TestCLISendFileAndSave(t *testing.T) {
	b := brokertest.Start(t)
	for _, u := range []string{"alice", "bob", "carol"} {
		b.AddUser(t, u, testPassword)
	}
	c := buildCLI(t, "mqtt://"+b.MQTTAddr)
	data := make([]byte, 300_000)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "report.bin")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	httpURL := "http://" + b.HTTPAddr
	out := c.ok("--user", "alice", "--http", httpURL, "send-file", "bob", src, "the", "report")
	if !regexp.MustCompile(`^✓ sent report\.bin as media \S+ \(application/octet-stream, 293\.0 KB\) seq 1\n$`).MatchString(out) {
		t.Fatalf("send-file printed %q", out)
	}
	hist := c.ok("--user", "bob", "history", "alice")
	m := regexp.MustCompile(`^\[\S+\] 1 alice: \[file report\.bin \(application/octet-stream, 293\.0 KB\) — msgr save (\S+) FILE\] the report\n$`).FindStringSubmatch(hist)
	if m == nil {
		t.Fatalf("history:\n%s", hist)
	}
	dst := filepath.Join(t.TempDir(), "saved.bin")
	if out := c.ok("--user", "bob", "--http", httpURL, "save", m[1], dst); out != "✓ saved 300000 bytes to "+dst+"\n" {
		t.Fatalf("save printed %q", out)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
		t.Fatal("saved file differs")
	}
	// carol may not, and nothing is left behind.
	other := filepath.Join(t.TempDir(), "carol.bin")
	_, stderr, code := c.run("", "--user", "carol", "--http", httpURL, "save", m[1], other)
	if code != 1 || !strings.Contains(stderr, "HTTP 403") {
		t.Fatalf("carol save: exit %d, %q", code, stderr)
	}
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Fatalf("failed save left %s: %v", other, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(other)); len(entries) != 0 {
		t.Fatalf("failed save left files: %v", entries)
	}
}
