package msgr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// ErrLogin means the broker refused a login or refresh (wrong password,
// revoked device, disabled account, ban); the message says which.
var ErrLogin = errors.New("msgr: login refused")

// refreshMargin is how long before expiry TokenSession.Token refreshes.
const refreshMargin = time.Minute

// TokenSession holds a device's access and refresh tokens from the
// broker's HTTP API (POST /v1/login) and refreshes them when needed. It is
// safe for concurrent use.
type TokenSession struct {
	base string
	http *http.Client

	mu  sync.Mutex
	tok tokenResponse
	// refreshBefore is refreshMargin; tests shorten a token's life by
	// raising it.
	refreshBefore time.Duration
}

type tokenResponse struct {
	AccessToken  string    `json:"access_token"`
	ExpiresAt    time.Time `json:"expires_at"`
	RefreshToken string    `json:"refresh_token"`
}

// Login logs user's device in at httpURL (the broker's HTTP address, e.g.
// http://127.0.0.1:8080) with the password and returns the session. Use
// its Token method as Config.TokenSource.
func Login(ctx context.Context, httpURL, user, password, device string) (*TokenSession, error) {
	s := &TokenSession{base: strings.TrimRight(httpURL, "/"), http: &http.Client{Timeout: 30 * time.Second}, refreshBefore: refreshMargin}
	err := s.post(ctx, "/v1/login", map[string]string{"user": user, "password": password, "device": device})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Token returns a valid access token, refreshing it first when it expires
// within a minute.
func (s *TokenSession) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Until(s.tok.ExpiresAt) > s.refreshBefore {
		return s.tok.AccessToken, nil
	}
	if s.tok.RefreshToken == "" {
		return "", fmt.Errorf("%w: access token expiring and no refresh token: log in again", ErrLogin)
	}
	if err := s.post(ctx, "/v1/token/refresh", map[string]string{"refresh_token": s.tok.RefreshToken}); err != nil {
		return "", err
	}
	return s.tok.AccessToken, nil
}

// Refresh trades the refresh token for new tokens now, e.g. after the
// operator rotated the signing key and the broker refuses the current
// access token.
func (s *TokenSession) Refresh(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok.RefreshToken == "" {
		return fmt.Errorf("%w: no refresh token: log in again", ErrLogin)
	}
	return s.post(ctx, "/v1/token/refresh", map[string]string{"refresh_token": s.tok.RefreshToken})
}

// post sends a login or refresh and stores the tokens answered. Callers
// other than Login hold s.mu.
func (s *TokenSession) post(ctx context.Context, path string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+path, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("msgr: %s: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("msgr: %s: %w", path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("msgr: %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error, Code string }
		_ = json.Unmarshal(out, &e)
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			return fmt.Errorf("%w: %s (%s)", ErrLogin, e.Error, e.Code)
		}
		return fmt.Errorf("msgr: %s: %s: %s", path, resp.Status, e.Error)
	}
	var tok tokenResponse
	if err := json.Unmarshal(out, &tok); err != nil || tok.AccessToken == "" {
		return fmt.Errorf("msgr: %s: malformed answer", path)
	}
	s.tok = tok
	return nil
}

// withToken puts the token source's current token in a CONNECT.
func withToken(cp *paho.Connect, src func(context.Context) (string, error), timeout time.Duration) (*paho.Connect, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tok, err := src(ctx)
	if err != nil {
		return nil, fmt.Errorf("msgr: access token: %w", err)
	}
	cp.Password, cp.PasswordFlag = []byte(tok), true
	return cp, nil
}
