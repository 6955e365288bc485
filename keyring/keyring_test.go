package keyring

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func key(t *testing.T, b byte) []byte {
	t.Helper()
	return bytes.Repeat([]byte{b}, KeySize)
}

func mustNew(t *testing.T, current []byte, previous ...[]byte) *Keyring {
	t.Helper()
	k, err := New(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestNewRejectsBadLengths(t *testing.T) {
	tests := []struct {
		name     string
		current  []byte
		previous [][]byte
		want     string
	}{
		{"nil current", nil, nil, "current master key is 0 bytes"},
		{"short current", make([]byte, 16), nil, "current master key is 16 bytes"},
		{"long current", make([]byte, 33), nil, "current master key is 33 bytes"},
		{"short previous", make([]byte, 32), [][]byte{make([]byte, 31)}, "previous master key 1 is 31 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.current, tt.previous...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestWrapUnwrap(t *testing.T) {
	a, b, c := key(t, 1), key(t, 2), key(t, 3)
	dk, err := NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	wA, err := mustNew(t, a).Wrap(dk)
	if err != nil {
		t.Fatal(err)
	}
	wB, err := mustNew(t, b).Wrap(dk)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		ring    *Keyring
		w       Wrapped
		wantErr error
	}{
		{"round trip", mustNew(t, a), wA, nil},
		{"previous key unwraps", mustNew(t, b, a), wA, nil},
		{"one of several previous", mustNew(t, c, b, a), wB, nil},
		{"wrong key", mustNew(t, b), wA, ErrUnknownMasterKey},
		{"relabelled with held key id", mustNew(t, a, b), Wrapped{MasterKeyID: KeyID(b), Ciphertext: wA.Ciphertext}, ErrCorrupt},
		{"unknown id", mustNew(t, a), Wrapped{MasterKeyID: "0011223344556677", Ciphertext: wA.Ciphertext}, ErrUnknownMasterKey},
		{"flipped bit", mustNew(t, a), Wrapped{MasterKeyID: wA.MasterKeyID, Ciphertext: flip(wA.Ciphertext, 20)}, ErrCorrupt},
		{"flipped nonce", mustNew(t, a), Wrapped{MasterKeyID: wA.MasterKeyID, Ciphertext: flip(wA.Ciphertext, 0)}, ErrCorrupt},
		{"truncated", mustNew(t, a), Wrapped{MasterKeyID: wA.MasterKeyID, Ciphertext: wA.Ciphertext[:len(wA.Ciphertext)-1]}, ErrCorrupt},
		{"empty", mustNew(t, a), Wrapped{MasterKeyID: wA.MasterKeyID}, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.ring.Unwrap(tt.w)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Unwrap: %v, want %v", err, tt.wantErr)
				}
				if got != nil {
					t.Fatalf("Unwrap returned a key with error %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, dk) {
				t.Fatal("Unwrap returned a different key")
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

func TestWrapRejectsBadDataKey(t *testing.T) {
	k := mustNew(t, key(t, 1))
	for _, n := range []int{0, 16, 31, 33} {
		if _, err := k.Wrap(make([]byte, n)); err == nil {
			t.Errorf("Wrap(%d bytes) succeeded", n)
		}
	}
}

func TestWrapIsRandomised(t *testing.T) {
	k := mustNew(t, key(t, 1))
	dk := key(t, 9)
	w1, _ := k.Wrap(dk)
	w2, _ := k.Wrap(dk)
	if bytes.Equal(w1.Ciphertext, w2.Ciphertext) {
		t.Fatal("two wraps of the same key are identical (nonce reuse)")
	}
}

func TestIDs(t *testing.T) {
	a, b := key(t, 1), key(t, 2)
	k := mustNew(t, a, b, a)
	if k.ID() != KeyID(a) || k.ID() == KeyID(b) {
		t.Fatalf("ID %s, KeyID(a) %s, KeyID(b) %s", k.ID(), KeyID(a), KeyID(b))
	}
	if len(k.ID()) != 16 || strings.Contains(k.ID(), ".") {
		t.Fatalf("ID %q: want 16 hex digits", k.ID())
	}
	if ids := k.IDs(); len(ids) != 2 || ids[0] != KeyID(a) || ids[1] != KeyID(b) {
		t.Fatalf("IDs = %v", ids)
	}
	if !k.Has(KeyID(b)) || k.Has(KeyID(key(t, 3))) {
		t.Fatal("Has is wrong")
	}
}

func TestNoKeyMaterialInOutput(t *testing.T) {
	master := []byte("0123456789abcdefghijklmnopqrstuv")
	k := mustNew(t, master)
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "keyring", k)
	outputs := []string{
		fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s %x %q", k, k, k, k, k, k), buf.String(),
	}
	for _, out := range outputs {
		for _, enc := range []string{string(master), hex.EncodeToString(master), base64.StdEncoding.EncodeToString(master), "0123456789"} {
			if strings.Contains(out, enc) {
				t.Fatalf("key material in %q", out)
			}
		}
		if !strings.Contains(out, k.ID()) {
			t.Fatalf("output %q does not name the key id", out)
		}
	}
}

func TestWrappedText(t *testing.T) {
	k := mustNew(t, key(t, 1))
	dk := key(t, 7)
	w, err := k.Wrap(dk)
	if err != nil {
		t.Fatal(err)
	}
	s := w.String()
	if !strings.HasPrefix(s, "v1."+k.ID()+".") {
		t.Fatalf("text form %q", s)
	}
	parsed, err := ParseWrapped(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.Unwrap(parsed)
	if err != nil || !bytes.Equal(got, dk) {
		t.Fatalf("round trip through text: %v", err)
	}
	bad := []struct{ name, in string }{
		{"empty", ""},
		{"no dots", "garbage"},
		{"other version", "v2." + k.ID() + ".AAAA"},
		{"no id", "v1..AAAA"},
		{"no ciphertext", "v1." + k.ID() + "."},
		{"missing part", "v1." + k.ID()},
		{"bad base64", "v1." + k.ID() + ".!!!!"},
		{"padded base64", "v1." + k.ID() + ".AA=="},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseWrapped(tt.in); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("ParseWrapped(%q) = %v, want ErrCorrupt", tt.in, err)
			}
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	k := mustNew(t, key(t, 1), key(t, 2))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				dk, err := NewDataKey()
				if err != nil {
					t.Error(err)
					return
				}
				w, err := k.Wrap(dk)
				if err != nil {
					t.Error(err)
					return
				}
				got, err := k.Unwrap(w)
				if err != nil || !bytes.Equal(got, dk) {
					t.Errorf("Unwrap: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestParseKey(t *testing.T) {
	raw := []byte("0123456789abcdefghijklmnopqrstuv")
	tests := []struct {
		name, in string
		want     []byte // nil: error expected
		errPart  string
	}{
		{"hex", hex.EncodeToString(raw), raw, ""},
		{"hex upper with newline", strings.ToUpper(hex.EncodeToString(raw)) + "\n", raw, ""},
		{"base64 std", base64.StdEncoding.EncodeToString(raw), raw, ""},
		{"base64 raw url", base64.RawURLEncoding.EncodeToString(raw), raw, ""},
		{"base64 with spaces", "  " + base64.StdEncoding.EncodeToString(raw) + "\r\n", raw, ""},
		{"empty", "  \n", nil, "empty"},
		{"short base64", base64.StdEncoding.EncodeToString(raw[:16]), nil, "decodes to 16 bytes"},
		{"short hex", hex.EncodeToString(raw[:16]), nil, "decodes to 24 bytes"},
		{"garbage", "not a key!", nil, "neither 64 hex digits nor base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKey(tt.in)
			if tt.want == nil {
				if err == nil || !strings.Contains(err.Error(), tt.errPart) {
					t.Fatalf("ParseKey: %v, want error containing %q", err, tt.errPart)
				}
				if in := strings.TrimSpace(tt.in); in != "" && strings.Contains(err.Error(), in) {
					t.Fatalf("error %q quotes the key", err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("ParseKey = %x, %v", got, err)
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	raw := key(t, 0x5a)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		path    string
		want    []byte
		errPart string
	}{
		{"raw", write("raw", raw), raw, ""},
		{"base64", write("b64", []byte(base64.StdEncoding.EncodeToString(raw)+"\n")), raw, ""},
		{"hex", write("hex", []byte(hex.EncodeToString(raw))), raw, ""},
		{"31 raw bytes", write("short", raw[:31]), nil, "or exactly 32 raw bytes"},
		{"empty", write("empty", nil), nil, "empty"},
		{"missing", filepath.Join(dir, "nope"), nil, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadFile(tt.path)
			if tt.want == nil {
				if err == nil || !strings.Contains(err.Error(), tt.errPart) {
					t.Fatalf("LoadFile: %v, want error containing %q", err, tt.errPart)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("LoadFile = %x, %v", got, err)
			}
		})
	}
}

func TestLoadOrCreateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "master.key")
	k1, created, err := LoadOrCreateFile(path)
	if err != nil || !created || len(k1) != KeySize {
		t.Fatalf("first LoadOrCreateFile: %d bytes, created %v, %v", len(k1), created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("key file permissions %o, want 600", perm)
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if perm := di.Mode().Perm(); perm&0o077 != 0 {
		t.Fatalf("key directory permissions %o, want no group/other access", perm)
	}
	k2, created, err := LoadOrCreateFile(path)
	if err != nil || created || !bytes.Equal(k1, k2) {
		t.Fatalf("second LoadOrCreateFile: created %v, same key %v, %v", created, bytes.Equal(k1, k2), err)
	}
	// A corrupt existing file is an error, never silently replaced.
	if err := os.WriteFile(path, []byte("nonsense"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateFile(path); err == nil {
		t.Fatal("LoadOrCreateFile replaced or accepted a corrupt key file")
	}
}

func TestDerive(t *testing.T) {
	a, b := key(t, 1), key(t, 2)
	ringA, err := New(a)
	if err != nil {
		t.Fatal(err)
	}
	sameA, err := New(a, b) // another node, mid-rotation, same current key
	if err != nil {
		t.Fatal(err)
	}
	ringB, err := New(b, a)
	if err != nil {
		t.Fatal(err)
	}
	link := ringA.Derive("media link signature")
	if len(link) != KeySize {
		t.Fatalf("derived %d bytes, want %d", len(link), KeySize)
	}
	if !bytes.Equal(link, sameA.Derive("media link signature")) {
		t.Error("the same current master key derived different keys")
	}
	for name, other := range map[string][]byte{
		"other purpose":     ringA.Derive("something else"),
		"other current key": ringB.Derive("media link signature"),
		"the master key":    a,
	} {
		if bytes.Equal(link, other) {
			t.Errorf("derived key equals %s", name)
		}
	}
}
