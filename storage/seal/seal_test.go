package seal

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/msgrhq/msgr/keyring"
	"github.com/msgrhq/msgr/storage"
)

func newSealer(t testing.TB, keys ...[]byte) *Sealer {
	t.Helper()
	ring, err := keyring.New(keys[0], keys[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	return New(ring, 4)
}

func key(b byte) []byte { return bytes.Repeat([]byte{b}, keyring.KeySize) }

func TestSealOpen(t *testing.T) {
	s := newSealer(t, key(1))
	w1, err := s.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	w2, _ := s.NewKey()
	ref := storage.BodyRef{ConvID: "c1", Seq: 7, KeyID: 3}
	body := []byte(`{"type":"text","text":"hello"}`)
	sealed, err := s.Seal(w1, ref, body)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, body) || sealed[0] != version {
		t.Fatalf("sealed = %q", sealed)
	}
	other := newSealer(t, key(2))
	tests := []struct {
		name    string
		s       *Sealer
		wrapped string
		ref     storage.BodyRef
		sealed  []byte
		wantErr error
	}{
		{"round trip", s, w1, ref, sealed, nil},
		{"other seq", s, w1, storage.BodyRef{ConvID: "c1", Seq: 8, KeyID: 3}, sealed, storage.ErrUndecryptable},
		{"other conversation", s, w1, storage.BodyRef{ConvID: "c2", Seq: 7, KeyID: 3}, sealed, storage.ErrUndecryptable},
		{"other key id", s, w1, storage.BodyRef{ConvID: "c1", Seq: 7, KeyID: 4}, sealed, storage.ErrUndecryptable},
		{"other data key", s, w2, ref, sealed, storage.ErrUndecryptable},
		{"truncated", s, w1, ref, sealed[:10], storage.ErrUndecryptable},
		{"unknown version", s, w1, ref, append([]byte{9}, sealed[1:]...), storage.ErrUndecryptable},
		{"wrong master key", other, w1, ref, sealed, storage.ErrWrongMasterKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.s.Open(tt.wrapped, tt.ref, tt.sealed)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || got != nil {
					t.Fatalf("Open = %q, %v; want %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("Open = %q, %v", got, err)
			}
		})
	}
}

func TestRewrap(t *testing.T) {
	old := newSealer(t, key(1))
	w, _ := old.NewKey()
	ref := storage.BodyRef{ConvID: "c", Seq: 1, KeyID: 1}
	sealed, _ := old.Seal(w, ref, []byte("x"))
	rotating := newSealer(t, key(2), key(1))
	nw, err := rotating.Rewrap(w)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := newSealer(t, key(2)).Open(nw, ref, sealed); err != nil || string(got) != "x" {
		t.Fatalf("Open after rewrap = %q, %v", got, err)
	}
}

func TestCachesAreBounded(t *testing.T) {
	s := newSealer(t, key(1))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				w, err := s.NewKey()
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := s.Seal(w, storage.BodyRef{ConvID: fmt.Sprint(g), Seq: int64(i)}, []byte("b")); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := len(s.aeads); n > 4 {
		t.Errorf("sealer caches %d keys, bound 4", n)
	}
	c := NewKeyCache(3)
	for i := range 10 {
		c.Put(fmt.Sprint(i), Key{ID: int64(i)})
	}
	if n := len(c.keys); n != 3 {
		t.Errorf("key cache holds %d, bound 3", n)
	}
	c.Put("9", Key{ID: 99}) // replacing never evicts
	if k, ok := c.Get("9"); !ok || k.ID != 99 || len(c.keys) != 3 {
		t.Errorf("Get(9) = %v, %v; %d entries", k, ok, len(c.keys))
	}
	c.Delete("9")
	if _, ok := c.Get("9"); ok {
		t.Error("Delete kept the key")
	}
}

// BenchmarkSeal is the CPU cost encryption adds per message on the write
// path (the data key cached, as on the hot path).
func BenchmarkSeal(b *testing.B) {
	s := newSealer(b, key(1))
	w, _ := s.NewKey()
	body := []byte(`{"type":"text","text":"Are we still on for lunch tomorrow? I can book the place near the office."}`)
	ref := storage.BodyRef{ConvID: "01JD6ZCONVERSATIONID00000", Seq: 12345, KeyID: 42}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := s.Seal(w, ref, body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen is the same for reads.
func BenchmarkOpen(b *testing.B) {
	s := newSealer(b, key(1))
	w, _ := s.NewKey()
	body := []byte(`{"type":"text","text":"Are we still on for lunch tomorrow? I can book the place near the office."}`)
	ref := storage.BodyRef{ConvID: "01JD6ZCONVERSATIONID00000", Seq: 12345, KeyID: 42}
	sealed, _ := s.Seal(w, ref, body)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := s.Open(w, ref, sealed); err != nil {
			b.Fatal(err)
		}
	}
}
