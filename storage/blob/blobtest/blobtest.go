// Package blobtest is the conformance suite for blob.Store implementations
// and the helpers that give tests a real MinIO server.
package blobtest

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sort"
	"testing"

	"github.com/msgrhq/msgr/storage/blob"
)

// Run runs the suite; open returns a new, empty store.
func Run(t *testing.T, open func(t *testing.T) blob.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s blob.Store)
	}{
		{"PutGet", testPutGet},
		{"Range", testRange},
		{"Missing", testMissing},
		{"Replace", testReplace},
		{"ShortPut", testShortPut},
		{"Walk", testWalk},
		{"Ping", testPing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func put(t *testing.T, s blob.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(t.Context(), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
}

func get(t *testing.T, s blob.Store, key string, off, length int64) []byte {
	t.Helper()
	rc, err := s.Get(t.Context(), key, off, length)
	if err != nil {
		t.Fatalf("Get %s %d+%d: %v", key, off, length, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get %s: read: %v", key, err)
	}
	return b
}

func testPutGet(t *testing.T, s blob.Store) {
	data := randomBytes(t, 200_000)
	put(t, s, "m/a", data)
	if got := get(t, s, "m/a", 0, -1); !bytes.Equal(got, data) {
		t.Fatalf("Get returned %d bytes, not what was put", len(got))
	}
	info, err := s.Stat(t.Context(), "m/a")
	if err != nil {
		t.Fatal(err)
	}
	if info.Key != "m/a" || info.Size != int64(len(data)) || info.Modified.IsZero() {
		t.Fatalf("Stat = %+v", info)
	}
	put(t, s, "empty", nil)
	if got := get(t, s, "empty", 0, -1); len(got) != 0 {
		t.Fatalf("empty object read %d bytes", len(got))
	}
}

func testRange(t *testing.T, s blob.Store) {
	data := randomBytes(t, 100_000)
	put(t, s, "r", data)
	tests := []struct{ off, length int64 }{
		{0, 1}, {0, 100}, {99_999, 1}, {12_345, 50_000}, {70_000, -1}, {0, 100_000},
	}
	for _, tt := range tests {
		want := data[tt.off:]
		if tt.length >= 0 {
			want = want[:tt.length]
		}
		if got := get(t, s, "r", tt.off, tt.length); !bytes.Equal(got, want) {
			t.Errorf("Get %d+%d: %d bytes, want %d matching", tt.off, tt.length, len(got), len(want))
		}
	}
}

func testMissing(t *testing.T, s blob.Store) {
	ctx := t.Context()
	if _, err := s.Get(ctx, "nope", 0, -1); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Get missing: %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(ctx, "nope"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat missing: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "nope"); err != nil {
		t.Errorf("Delete missing: %v", err)
	}
	put(t, s, "gone", []byte("x"))
	if err := s.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, "gone"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat after Delete: %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"", "../x", "a/../b", "/abs", "a b", "a//b"} {
		if err := s.Put(ctx, bad, bytes.NewReader(nil), 0); err == nil {
			t.Errorf("Put %q accepted", bad)
		}
	}
}

func testReplace(t *testing.T, s blob.Store) {
	put(t, s, "k", []byte("first version"))
	put(t, s, "k", []byte("second"))
	if got := get(t, s, "k", 0, -1); string(got) != "second" {
		t.Fatalf("after replace: %q", got)
	}
}

// testShortPut: a reader that ends before size must not leave an object.
func testShortPut(t *testing.T, s blob.Store) {
	err := s.Put(t.Context(), "short", bytes.NewReader([]byte("abc")), 10)
	if err == nil {
		t.Fatal("Put with a short reader succeeded")
	}
	if _, err := s.Stat(t.Context(), "short"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat after failed Put: %v, want ErrNotFound", err)
	}
}

func testWalk(t *testing.T, s blob.Store) {
	want := []string{"a", "m/01", "m/02", "x/y/z"}
	for i, k := range want {
		put(t, s, k, bytes.Repeat([]byte{'x'}, i))
	}
	var got []string
	err := s.Walk(t.Context(), func(i blob.Info) error {
		got = append(got, fmt.Sprintf("%s:%d", i.Key, i.Size))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if fmt.Sprint(got) != "[a:0 m/01:1 m/02:2 x/y/z:3]" {
		t.Fatalf("Walk = %v", got)
	}
	stop := errors.New("stop")
	n := 0
	err = s.Walk(t.Context(), func(blob.Info) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("Walk stopping: err %v after %d calls", err, n)
	}
}

func testPing(t *testing.T, s blob.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}
