package broker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certReloadCheck is how often a TLS handshake may look at the certificate
// files for a renewed certificate; renewals take effect without a restart.
const certReloadCheck = 10 * time.Second

// tlsConfigs returns the server TLS configurations: mqtt for MQTT/TLS and
// wss (client certificates as configured) and web for https (never asks
// for client certificates, so that probes and browsers work).
func (t TLSConfig) tlsConfigs(log *slog.Logger) (mqtt, web *tls.Config, err error) {
	r, err := newCertReloader(t.CertFile, t.KeyFile, log)
	if err != nil {
		return nil, nil, err
	}
	web = &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.get,
		// TLS 1.2: forward secret AEAD suites only (TLS 1.3 suites are
		// not configurable and all fine).
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
	mqtt = web.Clone()
	if t.ClientAuth == "request" || t.ClientAuth == "require" {
		pem, err := os.ReadFile(t.ClientCAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("tls-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("tls-client-ca: no PEM certificate in %s", t.ClientCAFile)
		}
		mqtt.ClientCAs = pool
		mqtt.ClientAuth = tls.VerifyClientCertIfGiven
		if t.ClientAuth == "require" {
			mqtt.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return mqtt, web, nil
}

// certReloader serves a certificate and picks up renewed files.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	mod     time.Time // newer modification time of the two files when loaded
	checked time.Time
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	mod, err := r.modTime()
	if err != nil {
		return nil, err
	}
	if err := r.load(mod); err != nil {
		return nil, err
	}
	r.checked = time.Now()
	return r, nil
}

func (r *certReloader) modTime() (time.Time, error) {
	var newest time.Time
	for _, f := range []string{r.certFile, r.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return time.Time{}, fmt.Errorf("tls: %w", err)
		}
		if st.ModTime().After(newest) {
			newest = st.ModTime()
		}
	}
	return newest, nil
}

func (r *certReloader) load(mod time.Time) error {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("tls: load %s and %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.mod = &cert, mod
	return nil
}

var errNoCertificate = errors.New("tls: no certificate")

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= certReloadCheck {
		r.checked = now
		if mod, err := r.modTime(); err == nil && mod.After(r.mod) {
			// A half-written renewal fails to load: keep serving the old
			// certificate and try again at the next check.
			if err := r.load(mod); err != nil {
				r.log.Warn("tls: keeping the current certificate", "error", err)
			} else {
				r.log.Info("tls: certificate reloaded", "file", r.certFile)
			}
		}
	}
	if r.cert == nil {
		return nil, errNoCertificate
	}
	return r.cert, nil
}
