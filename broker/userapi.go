package broker

import (
	"context"
	"errors"
	"net/http"
	"time"

	msgrauth "github.com/msgrhq/msgr/auth"
	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage"
)

// userRoutes registers the chat users' HTTP API: logging in for tokens and
// managing their devices.
func (b *Broker) userRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/login", b.login)
	mux.HandleFunc("POST /v1/token/refresh", b.refresh)
	mux.HandleFunc("GET /v1/devices", b.listOwnDevices)
	mux.HandleFunc("POST /v1/devices/{device}/revoke", b.revokeOwnDevice)
}

// TokenResponse is what /v1/login and /v1/token/refresh answer.
type TokenResponse struct {
	AccessToken      string    `json:"access_token"`
	TokenType        string    `json:"token_type"` // "Bearer"
	ExpiresIn        int64     `json:"expires_in"` // seconds
	ExpiresAt        time.Time `json:"expires_at"`
	RefreshToken     string    `json:"refresh_token,omitempty"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at,omitzero"`
	User             string    `json:"user"`
	Device           string    `json:"device"`
}

// LoginRequest is the body of POST /v1/login.
type LoginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
	Device   string `json:"device"`
}

func (b *Broker) tokensEnabled(w http.ResponseWriter) bool {
	if b.sec.tokens == nil {
		writeError(w, http.StatusServiceUnavailable, "tokens_disabled",
			"access tokens are not configured on this server (token-key-file or token-secret-file)")
		return false
	}
	return true
}

func (b *Broker) login(w http.ResponseWriter, r *http.Request) {
	if !b.tokensEnabled(w) {
		return
	}
	var req LoginRequest
	if !readJSON(w, r, &req) {
		return
	}
	if !protocol.ValidID(req.User) || !protocol.ValidID(req.Device) || req.Password == "" {
		writeError(w, http.StatusBadRequest, "bad_request",
			"user, password and device are required; user and device are 1-64 characters of a-z 0-9 . _ -")
		return
	}
	// Failed-login backoff, shared with MQTT logins (hooks/limits).
	if b.lim.LoginThrottled(req.User, r.RemoteAddr) {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "throttled", "too many failed logins: retry later")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	id, err := b.sec.auth.Authenticate(ctx, msgrauth.Credentials{
		User: req.User, Device: req.Device, Secret: req.Password, PasswordOnly: true,
		IP: msgrauth.RemoteAddr(r.RemoteAddr),
	})
	if !errors.Is(err, msgrauth.ErrUnavailable) {
		b.lim.LoginResult(req.User, r.RemoteAddr, err == nil)
	}
	if err != nil {
		b.log.Info("login refused", "user", req.User, "device", req.Device, "remote", r.RemoteAddr, "error", err)
		writeAuthError(w, err)
		return
	}
	if err := b.store.TouchDevice(ctx, req.User, req.Device, time.Now()); err != nil {
		b.log.Error("login: record device", "error", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "cannot record the device")
		return
	}
	b.issueTokens(ctx, w, req.User, req.Device, id.TokenGen)
}

// issueTokens answers with a new access token and, when configured, a new
// refresh token replacing the device's previous one.
func (b *Broker) issueTokens(ctx context.Context, w http.ResponseWriter, user, device string, gen int64) {
	resp, refreshHash, err := b.newTokens(user, device, gen)
	if err != nil {
		b.log.Error("issue tokens", "error", err)
		writeError(w, http.StatusInternalServerError, "internal", "cannot issue tokens")
		return
	}
	if refreshHash != "" {
		err := b.store.SetRefreshToken(ctx, user, device, storage.RefreshToken{Hash: refreshHash, ExpiresAt: resp.RefreshExpiresAt})
		if err != nil {
			writeAuthError(w, storeAuthError(err))
			return
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (b *Broker) newTokens(user, device string, gen int64) (TokenResponse, string, error) {
	access, claims, err := b.sec.tokens.Issue(user, device, gen)
	if err != nil {
		return TokenResponse{}, "", err
	}
	resp := TokenResponse{
		AccessToken: access, TokenType: "Bearer",
		ExpiresIn: int64(b.sec.tokens.TTL() / time.Second), ExpiresAt: claims.ExpiresAt.Time.UTC(),
		User: user, Device: device,
	}
	if b.sec.refreshTTL <= 0 {
		return resp, "", nil
	}
	refresh, hash, err := msgrauth.NewRefreshToken(user, device)
	if err != nil {
		return TokenResponse{}, "", err
	}
	resp.RefreshToken, resp.RefreshExpiresAt = refresh, time.Now().Add(b.sec.refreshTTL).UTC().Truncate(time.Millisecond)
	return resp, hash, nil
}

// storeAuthError maps a store error met while authenticating.
func storeAuthError(err error) error {
	switch {
	case errors.Is(err, storage.ErrRevoked):
		return err
	case errors.Is(err, storage.ErrNotFound):
		return msgrauth.ErrBadCredentials
	}
	return errors.Join(msgrauth.ErrUnavailable, err)
}

// RefreshRequest is the body of POST /v1/token/refresh.
type RefreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// refresh trades a refresh token for a new access token and a new refresh
// token; the old one is spent.
func (b *Broker) refresh(w http.ResponseWriter, r *http.Request) {
	if !b.tokensEnabled(w) {
		return
	}
	var req RefreshRequest
	if !readJSON(w, r, &req) {
		return
	}
	user, device, oldHash, err := msgrauth.ParseRefreshToken(req.RefreshToken)
	if err != nil {
		writeAuthError(w, msgrauth.ErrBadCredentials)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := b.sec.auth.CheckIP(ctx, msgrauth.RemoteAddr(r.RemoteAddr)); err != nil {
		writeAuthError(w, err)
		return
	}
	u, err := b.store.GetUser(ctx, user)
	if err != nil {
		writeAuthError(w, storeAuthError(err))
		return
	}
	if err := b.sec.auth.CheckAccount(ctx, u, device, true); err != nil {
		writeAuthError(w, err)
		return
	}
	resp, newHash, err := b.newTokens(user, device, u.TokenGen)
	if err != nil || newHash == "" {
		b.log.Error("refresh: issue tokens", "error", err)
		writeError(w, http.StatusInternalServerError, "internal", "cannot issue tokens")
		return
	}
	err = b.store.RotateRefreshToken(ctx, user, device, oldHash,
		storage.RefreshToken{Hash: newHash, ExpiresAt: resp.RefreshExpiresAt}, time.Now())
	if errors.Is(err, storage.ErrNotFound) {
		writeError(w, http.StatusUnauthorized, "bad_credentials", "refresh token invalid, expired, revoked or already used: log in again")
		return
	}
	if err != nil {
		writeAuthError(w, storeAuthError(err))
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// DeviceJSON is a device in the user and admin APIs.
type DeviceJSON struct {
	Device    string    `json:"device"`
	CreatedAt time.Time `json:"created_at"`
	LastSeen  time.Time `json:"last_seen"`
	Revoked   bool      `json:"revoked"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	Connected bool      `json:"connected"` // to this node
	Current   bool      `json:"current,omitempty"`
}

func (b *Broker) devicesJSON(ctx context.Context, user, current string) ([]DeviceJSON, error) {
	devs, err := b.store.ListDevices(ctx, user)
	if err != nil {
		return nil, err
	}
	out := make([]DeviceJSON, 0, len(devs))
	for _, d := range devs {
		cl, ok := b.mqtt.Clients.Get(user + "/" + d.DeviceID)
		out = append(out, DeviceJSON{
			Device: d.DeviceID, CreatedAt: d.CreatedAt, LastSeen: d.LastSeen,
			Revoked: !d.RevokedAt.IsZero(), RevokedAt: d.RevokedAt,
			Connected: ok && !cl.Closed(), Current: d.DeviceID == current && current != "",
		})
	}
	return out, nil
}

func (b *Broker) listOwnDevices(w http.ResponseWriter, r *http.Request) {
	id, err := b.httpIdentity(r)
	if err != nil {
		writeAuthError(w, err)
		return
	}
	devs, err := b.devicesJSON(r.Context(), id.User, id.Device)
	if err != nil {
		b.log.Error("list devices", "error", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "cannot list devices")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": devs})
}

func (b *Broker) revokeOwnDevice(w http.ResponseWriter, r *http.Request) {
	id, err := b.httpIdentity(r)
	if err != nil {
		writeAuthError(w, err)
		return
	}
	b.revokeDeviceHTTP(w, r, id.User, r.PathValue("device"))
}

// revokeDeviceHTTP revokes a device and answers with it.
func (b *Broker) revokeDeviceHTTP(w http.ResponseWriter, r *http.Request, user, device string) {
	err := b.RevokeDevice(r.Context(), user, device)
	if errors.Is(err, storage.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no device "+device+" of user "+user)
		return
	}
	if err != nil {
		b.log.Error("revoke device", "error", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "cannot revoke the device")
		return
	}
	d, err := b.store.GetDevice(r.Context(), user, device)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "device revoked, but cannot read it back")
		return
	}
	writeJSON(w, http.StatusOK, DeviceJSON{Device: d.DeviceID, CreatedAt: d.CreatedAt, LastSeen: d.LastSeen,
		Revoked: true, RevokedAt: d.RevokedAt})
}
