package broker

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"
)

// SecurityConfig configures access tokens, the admin API and this node's
// identity in admin listings.
type SecurityConfig struct {
	TokenKeyFile    string        // PEM PKCS#8 Ed25519 private key: EdDSA tokens
	TokenSecretFile string        // HS256 secret, at least 32 bytes
	TokenTTL        time.Duration // access token lifetime
	RefreshTTL      time.Duration // refresh token lifetime; 0 issues none
	TokenIssuer     string
	TokenAudience   string
	TokenLeeway     time.Duration // clock skew tolerated on exp/nbf/iat
	AdminTokenFile  string        // admin API bearer token; empty disables the admin API
	NodeID          string        // names this node in the admin API
}

// DefaultSecurityConfig has tokens and the admin API off until key files
// are configured.
func DefaultSecurityConfig() SecurityConfig {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "msgrd"
	}
	return SecurityConfig{
		TokenTTL:      15 * time.Minute,
		RefreshTTL:    30 * 24 * time.Hour,
		TokenIssuer:   "msgr",
		TokenAudience: "msgr",
		TokenLeeway:   30 * time.Second,
		NodeID:        host,
	}
}

// TokensEnabled reports whether a signing key is configured.
func (c *SecurityConfig) TokensEnabled() bool {
	return c.TokenKeyFile != "" || c.TokenSecretFile != ""
}

func (c *SecurityConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.TokenKeyFile, "token-key-file", c.TokenKeyFile, "Ed25519 private key (PEM PKCS#8) signing access tokens with EdDSA (MSGR_TOKEN_KEY_FILE)")
	fs.StringVar(&c.TokenSecretFile, "token-secret-file", c.TokenSecretFile, "secret of at least 32 bytes signing access tokens with HS256, instead of a key file (MSGR_TOKEN_SECRET_FILE)")
	fs.DurationVar(&c.TokenTTL, "token-ttl", c.TokenTTL, "access token lifetime (MSGR_TOKEN_TTL)")
	fs.DurationVar(&c.RefreshTTL, "refresh-token-ttl", c.RefreshTTL, "refresh token lifetime, 0 to issue none (MSGR_REFRESH_TOKEN_TTL)")
	fs.StringVar(&c.TokenIssuer, "token-issuer", c.TokenIssuer, "iss claim of access tokens (MSGR_TOKEN_ISSUER)")
	fs.StringVar(&c.TokenAudience, "token-audience", c.TokenAudience, "aud claim of access tokens (MSGR_TOKEN_AUDIENCE)")
	fs.DurationVar(&c.TokenLeeway, "token-leeway", c.TokenLeeway, "clock skew tolerated when checking token times (MSGR_TOKEN_LEEWAY)")
	fs.StringVar(&c.AdminTokenFile, "admin-token-file", c.AdminTokenFile, "file holding the admin API bearer token (32+ characters); empty disables the admin API (MSGR_ADMIN_TOKEN_FILE)")
	fs.StringVar(&c.NodeID, "node-id", c.NodeID, "name of this node in the admin API (MSGR_NODE_ID)")
}

func (c *SecurityConfig) validate() []error {
	var errs []error
	if c.TokenKeyFile != "" && c.TokenSecretFile != "" {
		errs = append(errs, errors.New("token-key-file and token-secret-file: set one, not both"))
	}
	if c.TokenTTL < time.Minute || c.TokenTTL > 24*time.Hour {
		errs = append(errs, fmt.Errorf("token-ttl: %v is outside 1m..24h", c.TokenTTL))
	}
	if c.RefreshTTL < 0 || c.RefreshTTL > 365*24*time.Hour {
		errs = append(errs, fmt.Errorf("refresh-token-ttl: %v is outside 0..8760h", c.RefreshTTL))
	}
	if c.RefreshTTL > 0 && c.RefreshTTL < c.TokenTTL {
		errs = append(errs, fmt.Errorf("refresh-token-ttl (%v) must not be shorter than token-ttl (%v)", c.RefreshTTL, c.TokenTTL))
	}
	if c.TokenLeeway < 0 || c.TokenLeeway > 5*time.Minute {
		errs = append(errs, fmt.Errorf("token-leeway: %v is outside 0..5m", c.TokenLeeway))
	}
	if c.TokenIssuer == "" || c.TokenAudience == "" {
		errs = append(errs, errors.New("token-issuer and token-audience: must not be empty"))
	}
	if c.NodeID == "" {
		errs = append(errs, errors.New("node-id: must not be empty"))
	}
	return errs
}
