package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrBadToken means an access or refresh token is malformed, forged,
// expired or meant for another issuer or audience.
var ErrBadToken = errors.New("invalid token")

// MinSecretBytes is the shortest HS256 secret accepted: the key must be at
// least as long as the hash output (RFC 7518 section 3.2).
const MinSecretBytes = 32

// TokenOptions configure access token issuing and validation.
type TokenOptions struct {
	Issuer   string
	Audience string
	TTL      time.Duration // lifetime of an access token
	// Leeway tolerates clock skew between the issuing and the validating
	// node when checking exp, nbf and iat.
	Leeway time.Duration
	Now    func() time.Time
}

// Claims are an access token's claims: sub is the user, dev the device,
// gen the user's token generation when it was issued (storage.User.TokenGen).
type Claims struct {
	jwt.RegisteredClaims
	Device string `json:"dev"`
	Gen    int64  `json:"gen,omitempty"`
}

// Tokens issues and validates access tokens: JWTs signed with one key and
// one algorithm. Validation accepts that algorithm only, so a token signed
// with "none" or with the public key used as an HMAC secret never passes.
type Tokens struct {
	method    jwt.SigningMethod
	signKey   any
	verifyKey any
	opts      TokenOptions
	parser    *jwt.Parser
}

// NewEd25519Tokens signs with EdDSA (Ed25519).
func NewEd25519Tokens(key ed25519.PrivateKey, opts TokenOptions) (*Tokens, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("token key: not an Ed25519 private key")
	}
	return newTokens(jwt.SigningMethodEdDSA, key, key.Public(), opts)
}

// NewHS256Tokens signs with HMAC-SHA256 and a shared secret.
func NewHS256Tokens(secret []byte, opts TokenOptions) (*Tokens, error) {
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("token secret: %d bytes, need at least %d", len(secret), MinSecretBytes)
	}
	return newTokens(jwt.SigningMethodHS256, secret, secret, opts)
}

func newTokens(m jwt.SigningMethod, sign, verify any, opts TokenOptions) (*Tokens, error) {
	if opts.Issuer == "" || opts.Audience == "" {
		return nil, errors.New("tokens: issuer and audience must be set")
	}
	if opts.TTL <= 0 {
		return nil, errors.New("tokens: TTL must be positive")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{m.Alg()}),
		jwt.WithIssuer(opts.Issuer),
		jwt.WithAudience(opts.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(opts.Leeway),
		jwt.WithTimeFunc(opts.Now),
	)
	return &Tokens{method: m, signKey: sign, verifyKey: verify, opts: opts, parser: parser}, nil
}

// LoadTokens reads the signing key from exactly one of keyFile (a PEM
// PKCS#8 Ed25519 private key, as `openssl genpkey -algorithm ed25519`
// writes) or secretFile (an HS256 secret; surrounding whitespace ignored).
func LoadTokens(keyFile, secretFile string, opts TokenOptions) (*Tokens, error) {
	switch {
	case keyFile != "" && secretFile != "":
		return nil, errors.New("tokens: set either a key file or a secret file, not both")
	case keyFile != "":
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("token key: %w", err)
		}
		block, _ := pem.Decode(b)
		if block == nil || block.Type != "PRIVATE KEY" {
			return nil, fmt.Errorf("token key %s: no PEM \"PRIVATE KEY\" block", keyFile)
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("token key %s: %w", keyFile, err)
		}
		ed, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("token key %s: %T is not an Ed25519 key", keyFile, k)
		}
		return NewEd25519Tokens(ed, opts)
	case secretFile != "":
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return nil, fmt.Errorf("token secret: %w", err)
		}
		return NewHS256Tokens([]byte(strings.TrimSpace(string(b))), opts)
	}
	return nil, errors.New("tokens: no key file or secret file")
}

// Alg is the signing algorithm's JWT name.
func (t *Tokens) Alg() string { return t.method.Alg() }

// TTL is the lifetime of issued access tokens.
func (t *Tokens) TTL() time.Duration { return t.opts.TTL }

// Issue returns a signed access token for user's device, under the user's
// current token generation gen.
func (t *Tokens) Issue(user, device string, gen int64) (string, Claims, error) {
	now := t.opts.Now().Truncate(time.Second)
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", Claims{}, fmt.Errorf("token id: %w", err)
	}
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.opts.Issuer,
			Subject:   user,
			Audience:  jwt.ClaimStrings{t.opts.Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(t.opts.TTL)),
			ID:        base64.RawURLEncoding.EncodeToString(jti),
		},
		Device: device,
		Gen:    gen,
	}
	s, err := jwt.NewWithClaims(t.method, c).SignedString(t.signKey)
	if err != nil {
		return "", Claims{}, fmt.Errorf("sign token: %w", err)
	}
	return s, c, nil
}

// Verify validates a token's signature, algorithm, issuer, audience and
// times and returns its claims. Every failure wraps ErrBadToken.
func (t *Tokens) Verify(token string) (Claims, error) {
	var c Claims
	_, err := t.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.verifyKey, nil })
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrBadToken, err)
	}
	if c.Subject == "" || c.Device == "" {
		return Claims{}, fmt.Errorf("%w: no subject or device", ErrBadToken)
	}
	return c, nil
}

// LooksLikeJWT reports whether s has the shape of a compact JWS (three
// base64url parts, the header a JSON object), so that an MQTT password can
// be told from a token without trying both.
func LooksLikeJWT(s string) bool {
	return strings.HasPrefix(s, "eyJ") && strings.Count(s, ".") == 2
}

// refreshPrefix marks refresh tokens, so that they are never mistaken for
// passwords or access tokens.
const refreshPrefix = "msgr_rt."

// NewRefreshToken returns a refresh token naming user's device, and the
// hash to store for it.
func NewRefreshToken(user, device string) (token, hash string, err error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return "", "", fmt.Errorf("refresh token: %w", err)
	}
	b64 := base64.RawURLEncoding
	token = refreshPrefix + b64.EncodeToString([]byte(user+"/"+device)) + "." + b64.EncodeToString(secret)
	return token, hashSecret(secret), nil
}

// ParseRefreshToken returns the user, device and stored hash a refresh
// token names; ErrBadToken if it is malformed.
func ParseRefreshToken(token string) (user, device, hash string, err error) {
	rest, ok := strings.CutPrefix(token, refreshPrefix)
	if !ok {
		return "", "", "", fmt.Errorf("%w: not a refresh token", ErrBadToken)
	}
	idPart, secretPart, ok := strings.Cut(rest, ".")
	b64 := base64.RawURLEncoding
	id, err1 := b64.DecodeString(idPart)
	secret, err2 := b64.DecodeString(secretPart)
	if !ok || err1 != nil || err2 != nil || len(secret) != 32 {
		return "", "", "", fmt.Errorf("%w: malformed refresh token", ErrBadToken)
	}
	user, device, ok = strings.Cut(string(id), "/")
	if !ok || user == "" || device == "" {
		return "", "", "", fmt.Errorf("%w: malformed refresh token", ErrBadToken)
	}
	return user, device, hashSecret(secret), nil
}

// hashSecret is what the store keeps of a refresh token: the secret has 256
// random bits, so a fast hash is enough (no dictionary to attack).
func hashSecret(secret []byte) string {
	sum := sha256.Sum256(secret)
	return hex.EncodeToString(sum[:])
}
