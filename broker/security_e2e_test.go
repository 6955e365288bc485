package broker_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/golang-jwt/jwt/v5"

	msgrauth "github.com/msgrhq/msgr/auth"
	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/broker/brokertest"
	"github.com/msgrhq/msgr/protocol"
)

// secure is a test broker with access tokens (EdDSA) and the admin API on.
type secure struct {
	*brokertest.Broker
	t          testing.TB
	key        ed25519.PrivateKey
	adminToken string
	http       *http.Client
}

const testAdminToken = "admin-token-for-tests-0123456789abcdef"

func startSecure(t testing.TB, opts ...brokertest.Option) *secure {
	t.Helper()
	dir := t.TempDir()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile, adminFile := filepath.Join(dir, "token.pem"), filepath.Join(dir, "admin-token")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(adminFile, []byte(testAdminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts = append(opts, brokertest.WithConfig(func(c *broker.Config) {
		c.Security.TokenKeyFile = keyFile
		c.Security.AdminTokenFile = adminFile
		c.Security.NodeID = "node-test"
	}))
	return &secure{Broker: brokertest.Start(t, opts...), t: t, key: key, adminToken: testAdminToken,
		http: &http.Client{Timeout: waitFor}}
}

// call does an HTTP request with a JSON body (nil for none) and an
// Authorization header (empty for none), returning status and body.
func (s *secure) call(method, path, authz string, body any) (int, []byte) {
	s.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+s.HTTPAddr+path, r)
	if err != nil {
		s.t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp.StatusCode, out
}

// admin calls the admin API and fails unless it answers want.
func (s *secure) admin(method, path string, body any, want int) []byte {
	s.t.Helper()
	status, out := s.call(method, path, "Bearer "+s.adminToken, body)
	if status != want {
		s.t.Fatalf("%s %s: %d %s, want %d", method, path, status, out, want)
	}
	return out
}

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// login gets tokens for user's device with its "pw-USER" password.
func (s *secure) login(user, device string) broker.TokenResponse {
	s.t.Helper()
	return s.loginWith(user, "pw-"+user, device)
}

func (s *secure) loginWith(user, password, device string) broker.TokenResponse {
	s.t.Helper()
	status, out := s.call("POST", "/v1/login", "", broker.LoginRequest{User: user, Password: password, Device: device})
	if status != http.StatusOK {
		s.t.Fatalf("login %s/%s: %d %s", user, device, status, out)
	}
	var tr broker.TokenResponse
	if err := json.Unmarshal(out, &tr); err != nil {
		s.t.Fatal(err)
	}
	return tr
}

func decode[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

// watched5 is an MQTT 5 connection that records the server's DISCONNECT.
type watched5 struct {
	c    *paho.Client
	gone chan byte // reason code of the server's DISCONNECT, or 0xff when the socket closed without one
}

func dialWatched5(t testing.TB, addr, user, device, password string) (*watched5, *paho.Connack, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	w := &watched5{gone: make(chan byte, 2)}
	w.c = paho.NewClient(paho.ClientConfig{
		Conn:               conn,
		PacketTimeout:      waitFor,
		OnServerDisconnect: func(d *paho.Disconnect) { w.gone <- d.ReasonCode },
		OnClientError:      func(error) { w.gone <- 0xff },
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	cp := chatConnect5(user, device, password)
	cp.KeepAlive = 60
	ca, err := w.c.Connect(ctx, cp)
	if err != nil {
		conn.Close()
		return nil, ca, err
	}
	t.Cleanup(func() { _ = w.c.Disconnect(&paho.Disconnect{}); conn.Close() })
	return w, ca, nil
}

// waitGone fails unless the server disconnects w with reason want.
func (w *watched5) waitGone(t testing.TB, want byte) {
	t.Helper()
	select {
	case got := <-w.gone:
		if got != want {
			t.Fatalf("disconnected with 0x%02x, want 0x%02x", got, want)
		}
	case <-time.After(waitFor):
		t.Fatal("still connected")
	}
}

// waitClosed fails unless the broker closes the 3.1.1 client's connection.
func waitClosed(t testing.TB, c *v3) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for c.c.IsConnectionOpen() {
		if time.Now().After(deadline) {
			t.Fatalf("%s/%s still connected", c.user, c.device)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTokenLoginOverMQTT(t *testing.T) {
	s := startSecure(t)
	users(t, s.Broker, "alice", "bob")
	alicePhone := s.login("alice", "phone")
	if alicePhone.TokenType != "Bearer" || alicePhone.ExpiresIn != 900 || alicePhone.RefreshToken == "" ||
		alicePhone.User != "alice" || alicePhone.Device != "phone" {
		t.Fatalf("login answer %+v", alicePhone)
	}
	bobLaptop := s.login("bob", "laptop")

	// MQTT 3.1.1 with the token as password: a real chat exchange.
	alice := dialV3(t, s.Broker, "alice", "phone", alicePhone.AccessToken, v3Options{})
	alice.next(protocol.EvSync)
	// MQTT 5 with the token as password.
	bob, ca, err := connectMQTT5(t, s.MQTTAddr, chatConnect5("bob", "laptop", bobLaptop.AccessToken))
	if err != nil {
		t.Fatalf("MQTT 5 token connect: %v (%+v)", err, ca)
	}
	_ = bob

	// A token is its device's and its user's only.
	for _, tc := range []struct{ name, user, device, token string }{
		{"other device", "alice", "laptop", alicePhone.AccessToken},
		{"other user", "bob", "phone", alicePhone.AccessToken},
		{"refresh token as password", "alice", "phone", alicePhone.RefreshToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if c, err := tryDialV3(t, s.Broker, tc.user, tc.device, tc.token, v3Options{noSub: true}); err == nil {
				c.c.Disconnect(0)
				t.Fatal("3.1.1 connection accepted")
			}
			if _, ca, err := connectMQTT5(t, s.MQTTAddr, chatConnect5(tc.user, tc.device, tc.token)); err == nil || ca == nil || ca.ReasonCode != v5BadCredential {
				t.Fatalf("MQTT 5: err %v connack %+v, want 0x86", err, ca)
			}
		})
	}

	// A token never stands in for the password where the password is
	// required: logging in (or a token could renew itself forever) and
	// HTTP Basic.
	if status, out := s.call("POST", "/v1/login", "", broker.LoginRequest{User: "alice", Password: alicePhone.AccessToken, Device: "phone"}); status != 401 {
		t.Errorf("login with a token as password: %d %s, want 401", status, out)
	}
	if status, out := s.call("GET", "/v1/devices", basic("alice", alicePhone.AccessToken), nil); status != 401 {
		t.Errorf("Basic with a token as password: %d %s, want 401", status, out)
	}

	// Passwords keep working next to tokens.
	dialV3(t, s.Broker, "alice", "tablet", "pw-alice", v3Options{})

	// Bearer on HTTP.
	status, out := s.call("GET", "/v1/devices", "Bearer "+alicePhone.AccessToken, nil)
	if status != 200 {
		t.Fatalf("GET /v1/devices: %d %s", status, out)
	}
	devs := decode[struct{ Devices []broker.DeviceJSON }](t, out).Devices
	if len(devs) != 2 || devs[0].Device != "phone" || !devs[0].Current || !devs[0].Connected || devs[1].Device != "tablet" {
		t.Errorf("devices = %+v", devs)
	}
}

func TestRefreshToken(t *testing.T) {
	s := startSecure(t)
	users(t, s.Broker, "alice")
	first := s.login("alice", "phone")
	status, out := s.call("POST", "/v1/token/refresh", "", broker.RefreshRequest{RefreshToken: first.RefreshToken})
	if status != 200 {
		t.Fatalf("refresh: %d %s", status, out)
	}
	second := decode[broker.TokenResponse](t, out)
	if second.RefreshToken == first.RefreshToken || second.AccessToken == "" {
		t.Fatalf("refresh answer %+v", second)
	}
	dialV3(t, s.Broker, "alice", "phone", second.AccessToken, v3Options{noSub: true})
	// A spent refresh token is refused.
	if status, out := s.call("POST", "/v1/token/refresh", "", broker.RefreshRequest{RefreshToken: first.RefreshToken}); status != 401 {
		t.Fatalf("reused refresh token: %d %s", status, out)
	}
	for _, bad := range []string{"", "nonsense", first.AccessToken} {
		if status, out := s.call("POST", "/v1/token/refresh", "", broker.RefreshRequest{RefreshToken: bad}); status != 401 {
			t.Errorf("refresh with %q: %d %s", bad, status, out)
		}
	}
}

// forge signs claims the way an attacker could.
func forge(t testing.TB, m jwt.SigningMethod, key any, c msgrauth.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestForgedAndExpiredTokensRefused(t *testing.T) {
	s := startSecure(t)
	users(t, s.Broker, "alice")
	good := s.login("alice", "phone")
	claims := func(mod func(*msgrauth.Claims)) msgrauth.Claims {
		now := time.Now()
		c := msgrauth.Claims{Device: "phone", RegisteredClaims: jwt.RegisteredClaims{
			Issuer: "msgr", Subject: "alice", Audience: jwt.ClaimStrings{"msgr"}, ID: "x",
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)),
		}}
		if mod != nil {
			mod(&c)
		}
		return c
	}
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	pub := s.key.Public().(ed25519.PublicKey)
	parts := strings.Split(good.AccessToken, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(bytes.Replace(payload, []byte(`"phone"`), []byte(`"tablet"`), 1)) + "." + parts[2]

	// The real key signs these two: only the claims are wrong.
	expired := forge(t, jwt.SigningMethodEdDSA, s.key, claims(func(c *msgrauth.Claims) {
		c.IssuedAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
		c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-2 * time.Minute)) // beyond the 30s leeway
	}))
	wrongAudience := forge(t, jwt.SigningMethodEdDSA, s.key, claims(func(c *msgrauth.Claims) { c.Audience = jwt.ClaimStrings{"other"} }))
	cases := []struct{ name, token, device string }{
		{"expired", expired, "phone"},
		{"wrong key", forge(t, jwt.SigningMethodEdDSA, otherKey, claims(nil)), "phone"},
		{"alg none", forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil)), "phone"},
		{"alg confusion (HS256 keyed with the public key)", forge(t, jwt.SigningMethodHS256, []byte(pub), claims(nil)), "phone"},
		{"tampered", tampered, "tablet"},
		{"wrong audience", wrongAudience, "phone"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if c, err := tryDialV3(t, s.Broker, "alice", tc.device, tc.token, v3Options{noSub: true}); err == nil {
				c.c.Disconnect(0)
				t.Error("MQTT 3.1.1 accepted it")
			}
			if _, ca, err := connectMQTT5(t, s.MQTTAddr, chatConnect5("alice", tc.device, tc.token)); err == nil || ca == nil || ca.ReasonCode != v5BadCredential {
				t.Errorf("MQTT 5: err %v connack %+v, want 0x86", err, ca)
			}
			if status, out := s.call("GET", "/v1/devices", "Bearer "+tc.token, nil); status != 401 {
				t.Errorf("HTTP: %d %s, want 401", status, out)
			}
		})
	}
	// The genuine token still works: the refusals were about the tokens.
	dialV3(t, s.Broker, "alice", "phone", good.AccessToken, v3Options{noSub: true})
}

func TestRevokeDisconnectsAndLocksOut(t *testing.T) {
	s := startSecure(t)
	users(t, s.Broker, "alice")
	phone := s.login("alice", "phone")
	laptop := s.login("alice", "laptop")
	live := dialV3(t, s.Broker, "alice", "phone", phone.AccessToken, v3Options{})
	live.next(protocol.EvSync)
	other, _, err := dialWatched5(t, s.MQTTAddr, "alice", "laptop", laptop.AccessToken)
	if err != nil {
		t.Fatal(err)
	}

	// alice revokes her phone from the laptop, over HTTP with the laptop's token.
	status, out := s.call("POST", "/v1/devices/phone/revoke", "Bearer "+laptop.AccessToken, nil)
	if status != 200 || !decode[broker.DeviceJSON](t, out).Revoked {
		t.Fatalf("revoke: %d %s", status, out)
	}
	waitClosed(t, live)

	for name, secret := range map[string]string{"token": phone.AccessToken, "password": "pw-alice"} {
		if c, err := tryDialV3(t, s.Broker, "alice", "phone", secret, v3Options{noSub: true}); err == nil {
			c.c.Disconnect(0)
			t.Errorf("revoked device reconnected with its %s", name)
		}
	}
	if status, out := s.call("GET", "/v1/devices", "Bearer "+phone.AccessToken, nil); status != 403 {
		t.Errorf("HTTP with the revoked device's token: %d %s, want 403", status, out)
	}
	if status, out := s.call("POST", "/v1/token/refresh", "", broker.RefreshRequest{RefreshToken: phone.RefreshToken}); status != 403 && status != 401 {
		t.Errorf("refresh of the revoked device: %d %s", status, out)
	}
	if status, out := s.call("POST", "/v1/login", "", broker.LoginRequest{User: "alice", Password: "pw-alice", Device: "phone"}); status != 403 {
		t.Errorf("login as the revoked device: %d %s, want 403", status, out)
	}
	// The laptop was not touched, and a new device id works.
	select {
	case code := <-other.gone:
		t.Fatalf("laptop disconnected too (0x%02x)", code)
	default:
	}
	dialV3(t, s.Broker, "alice", "phone2", "pw-alice", v3Options{noSub: true})

	// Revoked by the admin: an MQTT 5 client is told why.
	s.admin("POST", "/admin/v1/users/alice/devices/laptop/revoke", nil, 200)
	other.waitGone(t, 0x98)
}

func TestDisabledUserKickedAndRefused(t *testing.T) {
	s := startSecure(t)
	users(t, s.Broker, "alice", "bob")
	tok := s.login("alice", "phone")
	a1 := dialV3(t, s.Broker, "alice", "phone", tok.AccessToken, v3Options{})
	a2, _, err := dialWatched5(t, s.MQTTAddr, "alice", "laptop", "pw-alice")
	if err != nil {
		t.Fatal(err)
	}
	bob := dialV3(t, s.Broker, "bob", "phone", "pw-bob", v3Options{})

	u := decode[broker.UserJSON](t, s.admin("POST", "/admin/v1/users/alice/disable", nil, 200))
	if !u.Disabled {
		t.Fatalf("disable answered %+v", u)
	}
	waitClosed(t, a1)
	a2.waitGone(t, 0x98)
	if !bob.c.IsConnectionOpen() {
		t.Fatal("bob was disconnected too")
	}
	for name, secret := range map[string]string{"token": tok.AccessToken, "password": "pw-alice"} {
		if c, err := tryDialV3(t, s.Broker, "alice", "phone", secret, v3Options{noSub: true}); err == nil {
			c.c.Disconnect(0)
			t.Errorf("disabled user connected with a %s", name)
		}
	}
	if status, out := s.call("POST", "/v1/login", "", broker.LoginRequest{User: "alice", Password: "pw-alice", Device: "tablet"}); status != 403 {
		t.Errorf("disabled login: %d %s, want 403", status, out)
	}
	s.admin("POST", "/admin/v1/users/alice/enable", nil, 200)
	dialV3(t, s.Broker, "alice", "phone", "pw-alice", v3Options{noSub: true})
}

func TestAdminAPIRefusesUserCredentials(t *testing.T) {
	s := startSecure(t)
	users(t, s.Broker, "alice")
	tok := s.login("alice", "phone")
	for name, authz := range map[string]string{
		"no credentials":          "",
		"user password (Basic)":   basic("alice", "pw-alice"),
		"user access token":       "Bearer " + tok.AccessToken,
		"user refresh token":      "Bearer " + tok.RefreshToken,
		"admin token as Basic":    basic("admin", testAdminToken),
		"admin token, wrong case": "bearer " + testAdminToken,
		"admin token prefix":      "Bearer " + testAdminToken[:len(testAdminToken)-1],
		"admin token extended":    "Bearer " + testAdminToken + "x",
	} {
		t.Run(name, func(t *testing.T) {
			for _, ep := range []struct{ method, path string }{
				{"GET", "/admin/v1/users"}, {"POST", "/admin/v1/users/alice/disable"}, {"GET", "/admin/v1/nothing-here"},
				{"GET", "/admin/v1/openapi.json"},
			} {
				status, out := s.call(ep.method, ep.path, authz, nil)
				if status != 401 || decode[map[string]string](t, out)["code"] != "unauthenticated" {
					t.Errorf("%s %s: %d %s, want 401 unauthenticated", ep.method, ep.path, status, out)
				}
			}
		})
	}
	if u := decode[broker.UserJSON](t, s.admin("GET", "/admin/v1/users/alice", nil, 200)); u.Disabled {
		t.Fatal("a refused request disabled alice")
	}

	// Without an admin token file there is no admin API at all.
	plain := brokertest.Start(t)
	resp, err := http.Get("http://" + plain.HTTPAddr + "/admin/v1/users")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(body), "admin_disabled") {
		t.Errorf("admin API without a token file: %d %s", resp.StatusCode, body)
	}
}

func TestBansEnforced(t *testing.T) {
	s := startSecure(t)
	users(t, s.Broker, "alice", "bob")
	alice, _, err := dialWatched5(t, s.MQTTAddr, "alice", "phone", "pw-alice")
	if err != nil {
		t.Fatal(err)
	}
	tok := s.login("bob", "phone")

	ban := decode[broker.BanJSON](t, s.admin("POST", "/admin/v1/bans", broker.BanRequest{Kind: "user", Value: "alice", Reason: "spam"}, 201))
	if !ban.Active || ban.Value != "alice" {
		t.Fatalf("ban = %+v", ban)
	}
	alice.waitGone(t, 0x8A)
	if _, ca, err := connectMQTT5(t, s.MQTTAddr, chatConnect5("alice", "phone", "pw-alice")); err == nil || ca == nil || ca.ReasonCode != v5BadCredential {
		t.Errorf("banned user connected: %v %+v", err, ca)
	}
	if status, out := s.call("POST", "/v1/login", "", broker.LoginRequest{User: "alice", Password: "pw-alice", Device: "phone"}); status != 403 {
		t.Errorf("banned login: %d %s", status, out)
	}
	s.admin("POST", "/admin/v1/bans", broker.BanRequest{Kind: "user", Value: "alice"}, 409)
	dialV3(t, s.Broker, "bob", "phone", "pw-bob", v3Options{noSub: true}) // others unaffected
	s.admin("DELETE", "/admin/v1/bans/user/alice", nil, 204)
	s.admin("DELETE", "/admin/v1/bans/user/alice", nil, 404)
	dialV3(t, s.Broker, "alice", "phone", "pw-alice", v3Options{noSub: true})

	// An address ban: the tests connect from 127.0.0.1.
	ip := decode[broker.BanJSON](t, s.admin("POST", "/admin/v1/bans", broker.BanRequest{Kind: "ip", Value: "127.0.0.1/8", Duration: "1h"}, 201))
	if ip.Value != "127.0.0.0/8" || ip.ExpiresAt.IsZero() {
		t.Fatalf("ip ban = %+v, want canonical 127.0.0.0/8 with an expiry", ip)
	}
	if c, err := tryDialV3(t, s.Broker, "bob", "phone", tok.AccessToken, v3Options{noSub: true}); err == nil {
		c.c.Disconnect(0)
		t.Error("banned address connected with a token")
	}
	if status, out := s.call("POST", "/v1/login", "", broker.LoginRequest{User: "bob", Password: "pw-bob", Device: "phone"}); status != 403 {
		t.Errorf("login from a banned address: %d %s", status, out)
	}
	// The admin API stays reachable, or the operator could lock themself out.
	bans := decode[struct{ Bans []broker.BanJSON }](t, s.admin("GET", "/admin/v1/bans", nil, 200)).Bans
	if len(bans) != 1 || bans[0].Kind != "ip" {
		t.Fatalf("bans = %+v", bans)
	}
	s.admin("DELETE", "/admin/v1/bans/ip/127.0.0.0/8", nil, 204)
	dialV3(t, s.Broker, "bob", "phone", tok.AccessToken, v3Options{noSub: true})

	for _, bad := range []broker.BanRequest{
		{Kind: "ip", Value: "not-an-ip"}, {Kind: "planet", Value: "x"}, {Kind: "user", Value: "Not Valid"},
		{Kind: "user", Value: "bob", Duration: "-1h"}, {Kind: "user", Value: "bob", Duration: "soon"},
	} {
		status, out := s.call("POST", "/admin/v1/bans", "Bearer "+s.adminToken, bad)
		if status != 400 {
			t.Errorf("ban %+v: %d %s, want 400", bad, status, out)
		}
	}
}

func TestAdminEndpoints(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			var opts []brokertest.Option
			if store == "postgres" {
				opts = append(opts, brokertest.WithPostgres(t))
			}
			testAdminEndpoints(t, startSecure(t, opts...), store)
		})
	}
}

func testAdminEndpoints(t *testing.T, s *secure, store string) {
	// Users: create, get, list with paging, duplicates and bad input.
	for _, id := range []string{"alice", "bob", "carol"} {
		u := decode[broker.UserJSON](t, s.admin("POST", "/admin/v1/users", broker.CreateUserRequest{ID: id, Password: "pw-" + id}, 201))
		if u.ID != id || u.Disabled || u.Deleted {
			t.Fatalf("created %+v", u)
		}
	}
	s.admin("POST", "/admin/v1/users", broker.CreateUserRequest{ID: "alice", Password: "x"}, 409)
	s.admin("POST", "/admin/v1/users", broker.CreateUserRequest{ID: "Alice!", Password: "x"}, 400)
	s.admin("POST", "/admin/v1/users", broker.CreateUserRequest{ID: "dave"}, 400)
	s.admin("POST", "/admin/v1/users", map[string]string{"id": "dave", "password": "x", "admin": "yes"}, 400)
	s.admin("GET", "/admin/v1/users/nobody", nil, 404)
	page := decode[struct {
		Users []broker.UserJSON
		Next  string
	}](t, s.admin("GET", "/admin/v1/users?limit=2", nil, 200))
	if len(page.Users) != 2 || page.Users[0].ID != "alice" || page.Next != "bob" {
		t.Fatalf("first page %+v", page)
	}
	page2 := decode[struct {
		Users []broker.UserJSON
		Next  string
	}](t, s.admin("GET", "/admin/v1/users?limit=2&after=bob", nil, 200))
	if len(page2.Users) != 1 || page2.Users[0].ID != "carol" || page2.Next != "" {
		t.Fatalf("second page %+v", page2)
	}
	s.admin("GET", "/admin/v1/users?limit=0", nil, 400)

	// The created users can chat; their devices show up.
	alice := dialV3(t, s.Broker, "alice", "phone", "pw-alice", v3Options{})
	alice.next(protocol.EvSync)
	bob, _, err := dialWatched5(t, s.MQTTAddr, "bob", "laptop", "pw-bob")
	if err != nil {
		t.Fatal(err)
	}
	sent := alice.send(protocol.Request{To: "bob", CMID: "m1", Body: text("hello bob")})
	if u := decode[broker.UserJSON](t, s.admin("GET", "/admin/v1/users/alice", nil, 200)); u.Connected != 1 {
		t.Errorf("alice connected devices = %d, want 1", u.Connected)
	}
	devs := decode[struct{ Devices []broker.DeviceJSON }](t, s.admin("GET", "/admin/v1/users/alice/devices", nil, 200)).Devices
	if len(devs) != 1 || devs[0].Device != "phone" || !devs[0].Connected || devs[0].Revoked {
		t.Fatalf("devices = %+v", devs)
	}
	s.admin("GET", "/admin/v1/users/nobody/devices", nil, 404)
	s.admin("POST", "/admin/v1/users/alice/devices/nothing/revoke", nil, 404)

	// Password reset: the old password, the access and refresh tokens
	// issued before stop working, and the user's connections are closed.
	carolTokens := s.login("carol", "phone")
	carolBefore := dialV3(t, s.Broker, "carol", "phone", carolTokens.AccessToken, v3Options{noSub: true})
	s.admin("PUT", "/admin/v1/users/carol/password", broker.PasswordRequest{Password: "new-pw"}, 200)
	waitClosed(t, carolBefore)
	if status, out := s.call("POST", "/v1/token/refresh", "", broker.RefreshRequest{RefreshToken: carolTokens.RefreshToken}); status != 401 {
		t.Errorf("refresh after a password reset: %d %s, want 401", status, out)
	}
	if c, err := tryDialV3(t, s.Broker, "carol", "phone", carolTokens.AccessToken, v3Options{noSub: true}); err == nil {
		c.c.Disconnect(0)
		t.Error("an access token issued before the reset still connects")
	}
	if status, out := s.call("GET", "/v1/devices", "Bearer "+carolTokens.AccessToken, nil); status != 401 {
		t.Errorf("GET /v1/devices with a token issued before the reset: %d %s, want 401", status, out)
	}
	carolAfter := s.loginWith("carol", "new-pw", "phone")
	if status, out := s.call("GET", "/v1/devices", "Bearer "+carolAfter.AccessToken, nil); status != 200 {
		t.Errorf("GET /v1/devices with a token issued after the reset: %d %s, want 200", status, out)
	}
	s.admin("PUT", "/admin/v1/users/carol/password", broker.PasswordRequest{}, 400)
	s.admin("PUT", "/admin/v1/users/nobody/password", broker.PasswordRequest{Password: "x"}, 404)
	if c, err := tryDialV3(t, s.Broker, "carol", "phone", "pw-carol", v3Options{noSub: true}); err == nil {
		c.c.Disconnect(0)
		t.Error("old password still works after reset")
	}
	carol := dialV3(t, s.Broker, "carol", "phone", "new-pw", v3Options{noSub: true})

	// Disable and enable; revoke a device.
	if u := decode[broker.UserJSON](t, s.admin("POST", "/admin/v1/users/carol/disable", nil, 200)); !u.Disabled || u.DisabledAt.IsZero() {
		t.Fatalf("disabled user = %+v", u)
	}
	waitClosed(t, carol)
	if u := decode[broker.UserJSON](t, s.admin("POST", "/admin/v1/users/carol/enable", nil, 200)); u.Disabled {
		t.Fatalf("enabled user = %+v", u)
	}
	carol = dialV3(t, s.Broker, "carol", "phone", "new-pw", v3Options{noSub: true})
	if d := decode[broker.DeviceJSON](t, s.admin("POST", "/admin/v1/users/carol/devices/phone/revoke", nil, 200)); !d.Revoked || d.RevokedAt.IsZero() {
		t.Fatalf("revoked device = %+v", d)
	}
	waitClosed(t, carol)
	s.admin("POST", "/admin/v1/users/nobody/enable", nil, 404)

	// Conversations: list, get, members, delete.
	convs := decode[struct{ Conversations []broker.ConversationJSON }](t, s.admin("GET", "/admin/v1/conversations", nil, 200)).Conversations
	if len(convs) != 1 || convs[0].ID != sent.Conv || convs[0].Kind != "direct" || convs[0].LastSeq != 1 {
		t.Fatalf("conversations = %+v (sent to %s)", convs, sent.Conv)
	}
	if c := decode[broker.ConversationJSON](t, s.admin("GET", "/admin/v1/conversations/"+sent.Conv, nil, 200)); c.CreatedBy != "alice" {
		t.Errorf("conversation = %+v", c)
	}
	members := decode[struct{ Members []broker.MemberJSON }](t, s.admin("GET", "/admin/v1/conversations/"+sent.Conv+"/members", nil, 200)).Members
	if len(members) != 2 || members[0].User != "alice" || members[1].User != "bob" || members[0].Read != 1 {
		t.Errorf("members = %+v", members)
	}
	s.admin("GET", "/admin/v1/conversations/nope/members", nil, 404)

	// Connected clients, with node, address, protocol version and time.
	clients := decode[struct {
		Node    string
		Clients []broker.ClientJSON
	}](t, s.admin("GET", "/admin/v1/clients", nil, 200))
	byID := map[string]broker.ClientJSON{}
	for _, c := range clients.Clients {
		byID[c.ID] = c
	}
	a, b := byID["alice/phone"], byID["bob/laptop"]
	if clients.Node != "node-test" || a.Node != "node-test" || a.ProtocolVersion != 4 || b.ProtocolVersion != 5 ||
		a.RemoteIP != "127.0.0.1" || a.ConnectedAt.IsZero() || time.Since(a.ConnectedAt) > time.Minute || a.Listener != "tcp" || a.User != "alice" {
		t.Fatalf("clients = %+v", clients)
	}

	// Stats.
	st := decode[broker.StatsJSON](t, s.admin("GET", "/admin/v1/stats", nil, 200))
	if st.Node != "node-test" || st.ClientsConnected < 2 || st.MessagesReceived < 1 || !st.Store.OK || st.Store.Kind != store ||
		!st.TokensEnabled || st.TokenAlg != "EdDSA" {
		t.Errorf("stats = %+v", st)
	}

	// Kick: bob's MQTT 5 client is told "administrative action"; he may reconnect.
	s.admin("DELETE", "/admin/v1/clients/bob/laptop", nil, 204)
	bob.waitGone(t, 0x98)
	s.admin("DELETE", "/admin/v1/clients/bob/laptop", nil, 404)
	dialV3(t, s.Broker, "bob", "laptop", "pw-bob", v3Options{noSub: true})

	s.admin("DELETE", "/admin/v1/conversations/"+sent.Conv, nil, 204)
	s.admin("GET", "/admin/v1/conversations/"+sent.Conv, nil, 404)
	s.admin("DELETE", "/admin/v1/conversations/"+sent.Conv, nil, 404)

	// Delete a user: disconnected, locked out, id not reusable.
	del := decode[broker.UserJSON](t, s.admin("DELETE", "/admin/v1/users/alice", nil, 200))
	if !del.Deleted {
		t.Fatalf("deleted user = %+v", del)
	}
	waitClosed(t, alice)
	if c, err := tryDialV3(t, s.Broker, "alice", "phone", "pw-alice", v3Options{noSub: true}); err == nil {
		c.c.Disconnect(0)
		t.Error("deleted user connected")
	}
	s.admin("DELETE", "/admin/v1/users/alice", nil, 404)
	s.admin("POST", "/admin/v1/users", broker.CreateUserRequest{ID: "alice", Password: "x"}, 409)
	s.admin("POST", "/admin/v1/users/alice/disable", nil, 404)

	// Bans against this store.
	s.admin("POST", "/admin/v1/bans", broker.BanRequest{Kind: "ip", Value: "192.0.2.1"}, 201)
	if bans := decode[struct{ Bans []broker.BanJSON }](t, s.admin("GET", "/admin/v1/bans", nil, 200)).Bans; len(bans) != 1 || bans[0].Value != "192.0.2.1/32" {
		t.Errorf("bans = %+v", bans)
	}
	s.admin("DELETE", "/admin/v1/bans/ip/192.0.2.1", nil, 204)

	// The OpenAPI document is served.
	doc := decode[map[string]any](t, s.admin("GET", "/admin/v1/openapi.json", nil, 200))
	if fmt.Sprint(doc["openapi"]) != "3.0.3" {
		t.Errorf("openapi = %v", doc["openapi"])
	}
	// Unknown admin paths are a JSON 404, wrong methods a JSON 405.
	s.admin("GET", "/admin/v1/nothing", nil, 404)
	if out := s.admin("PATCH", "/admin/v1/users/bob", nil, 405); !strings.Contains(string(out), "GET, DELETE") {
		t.Errorf("405 answer %s", out)
	}
	s.admin("GET", "/admin/v1/users/bob/disable", nil, 405)
}
