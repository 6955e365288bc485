package keyring

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ParseKey decodes a master key given as text: 64 hex digits or base64
// (standard or URL alphabet, padded or not) of KeySize bytes. Surrounding
// white space is ignored. The error never quotes the input.
func ParseKey(text string) ([]byte, error) {
	s := string(bytes.TrimSpace([]byte(text)))
	if s == "" {
		return nil, errors.New("keyring: master key is empty")
	}
	if len(s) == 2*KeySize {
		if key, err := hex.DecodeString(s); err == nil {
			return key, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		key, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("keyring: master key decodes to %d bytes, want %d", len(key), KeySize)
		}
		return key, nil
	}
	return nil, fmt.Errorf("keyring: master key (%d characters) is neither 64 hex digits nor base64 of %d bytes", len(s), KeySize)
}

// LoadFile reads a master key file: exactly KeySize raw bytes, or text as
// ParseKey accepts.
func LoadFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: read master key file: %w", err)
	}
	if len(data) == KeySize {
		return data, nil
	}
	key, err := ParseKey(string(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w (or exactly %d raw bytes)", path, err, KeySize)
	}
	return key, nil
}

// LoadOrCreateFile loads the master key file at path, first creating it
// with a new random key (base64 text, permissions 0600, parent directories
// 0700) if it does not exist. created reports whether it did.
func LoadOrCreateFile(path string) (key []byte, created bool, err error) {
	key, err = LoadFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("keyring: create master key directory: %w", err)
	}
	key = make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, false, fmt.Errorf("keyring: generate master key: %w", err)
	}
	// O_EXCL: if another process created the file meanwhile, use its key
	// rather than overwrite it and orphan whatever it encrypted.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		key, err = LoadFile(path)
		return key, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("keyring: create master key file: %w", err)
	}
	_, werr := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path)
		return nil, false, fmt.Errorf("keyring: write master key file: %w", werr)
	}
	return key, true, nil
}
