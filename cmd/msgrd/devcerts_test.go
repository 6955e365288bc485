package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDevCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"dev-certs", dir, "localhost", "192.0.2.10"}, nil, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "-tls-cert "+filepath.Join(dir, "server.pem")) {
		t.Errorf("output %q", out.String())
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	for _, c := range []struct {
		name  string
		usage x509.ExtKeyUsage
		host  string
	}{{"server", x509.ExtKeyUsageServerAuth, "192.0.2.10"}, {"client", x509.ExtKeyUsageClientAuth, ""}} {
		kp, err := tls.LoadX509KeyPair(filepath.Join(dir, c.name+".pem"), filepath.Join(dir, c.name+"-key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(kp.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: c.host, KeyUsages: []x509.ExtKeyUsage{c.usage}}); err != nil {
			t.Errorf("%s certificate: %v", c.name, err)
		}
		st, err := os.Stat(filepath.Join(dir, c.name+"-key.pem"))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s key mode %v (%v)", c.name, st.Mode(), err)
		}
	}
	// Existing files are never overwritten.
	if err := run(context.Background(), []string{"dev-certs", dir}, nil, &out, &out); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("second run: %v", err)
	}
	if err := run(context.Background(), []string{"dev-certs"}, nil, &out, &out); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("no directory: %v", err)
	}
}
