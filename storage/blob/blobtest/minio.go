package blobtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/msgrhq/msgr/storage/blob"
)

// S3 returns the configuration of a fresh, randomly named bucket on the
// MinIO server named by MSGR_TEST_S3_ENDPOINT, MSGR_TEST_S3_ACCESS_KEY and
// MSGR_TEST_S3_SECRET_KEY. It skips the test when they are unset;
// scripts/test.sh always sets them.
func S3(t testing.TB) blob.S3Config {
	t.Helper()
	endpoint := os.Getenv("MSGR_TEST_S3_ENDPOINT")
	if endpoint == "" {
		t.Skip("MSGR_TEST_S3_ENDPOINT not set (scripts/test.sh starts MinIO)")
	}
	cfg := blob.S3Config{
		Endpoint:  endpoint,
		Bucket:    bucketName(t),
		AccessKey: os.Getenv("MSGR_TEST_S3_ACCESS_KEY"),
		SecretKey: os.Getenv("MSGR_TEST_S3_SECRET_KEY"),
	}
	// A server just started may not serve requests yet.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := pingS3(cfg)
		if err == nil {
			return cfg
		}
		if time.Now().After(deadline) {
			t.Fatalf("MinIO at %s not ready: %v", endpoint, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func bucketName(t testing.TB) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "msgr-test-" + hex.EncodeToString(b)
}

// MinIO is a private MinIO server a test may stop.
type MinIO struct {
	Config blob.S3Config
	cmd    *exec.Cmd
	done   chan struct{}
}

// StartMinIO starts a MinIO server of its own for the test, from the
// binary named by MSGR_TEST_MINIO_BIN (skipping when unset), on a free
// loopback port with a temporary data directory. It is stopped on cleanup.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	bin := os.Getenv("MSGR_TEST_MINIO_BIN")
	if bin == "" {
		t.Skip("MSGR_TEST_MINIO_BIN not set (scripts/test.sh installs MinIO)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	consoleLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	console := consoleLn.Addr().String()
	consoleLn.Close()
	cfg := blob.S3Config{Endpoint: addr, Bucket: bucketName(t), AccessKey: "msgrtest", SecretKey: "msgrtest-secret"}
	cmd := exec.Command(bin, "server", "--quiet", "--address", addr, "--console-address", console, t.TempDir())
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+cfg.AccessKey, "MINIO_ROOT_PASSWORD="+cfg.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start minio: %v", err)
	}
	m := &MinIO{Config: cfg, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(m.done) }()
	t.Cleanup(m.Stop)
	deadline := time.Now().Add(60 * time.Second)
	for {
		// The health endpoints answer before the object layer is up
		// ("Server not initialized yet"): wait for a real S3 request.
		err := pingS3(cfg)
		if err == nil {
			return m
		}
		select {
		case <-m.done:
			t.Fatalf("minio exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("minio not ready after 60s: %v\n%s", err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop kills the server and waits for it to exit.
func (m *MinIO) Stop() {
	select {
	case <-m.done:
		return
	default:
	}
	_ = m.cmd.Process.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	select {
	case <-m.done:
	case <-ctx.Done():
		fmt.Fprintln(os.Stderr, "blobtest: minio did not exit")
	}
}

func pingS3(cfg blob.S3Config) error {
	s, err := blob.NewS3(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Ping(ctx)
}
