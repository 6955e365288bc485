package storetest

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/msgrhq/msgr/keyring"
	"github.com/msgrhq/msgr/storage"
)

func media(id, owner string, created time.Time) storage.Media {
	return storage.Media{
		ID:          id,
		OwnerID:     owner,
		ContentType: "image/jpeg",
		Name:        "photo " + id + ".jpg",
		Size:        5_000_123,
		WrappedKey:  "k1:wrapped-" + id,
		Thumbnail:   []byte{0, 1, 2, 0xff, 'j'},
		Width:       4032,
		Height:      3024,
		CreatedAt:   created,
	}
}

func testMediaCreateGet(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice")
	m := media("m1", "alice", at(1))
	must(t, "CreateMedia", s.CreateMedia(ctx, m))
	got, err := s.GetMedia(ctx, "m1")
	must(t, "GetMedia", err)
	if !bytes.Equal(got.Thumbnail, m.Thumbnail) || !ms(got.CreatedAt).Equal(ms(m.CreatedAt)) {
		t.Fatalf("GetMedia = %+v, want %+v", got, m)
	}
	got.Thumbnail, m.Thumbnail, got.CreatedAt, m.CreatedAt = nil, nil, time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("GetMedia = %+v, want %+v", got, m)
	}
	file := storage.Media{ID: "f1", OwnerID: "alice", ContentType: "application/pdf", Name: "a.pdf", Size: 0, WrappedKey: "k", CreatedAt: at(2)}
	must(t, "CreateMedia without thumbnail", s.CreateMedia(ctx, file))
	got, err = s.GetMedia(ctx, "f1")
	must(t, "GetMedia", err)
	if len(got.Thumbnail) != 0 || got.Width != 0 || got.Size != 0 {
		t.Fatalf("GetMedia(file) = %+v", got)
	}
	checkErr(t, "CreateMedia duplicate", s.CreateMedia(ctx, m), storage.ErrExists)
	checkErr(t, "CreateMedia unknown owner", s.CreateMedia(ctx, media("m2", "nobody", at(1))), storage.ErrNotFound)
	_, err = s.GetMedia(ctx, "missing")
	checkErr(t, "GetMedia missing", err, storage.ErrNotFound)
}

func testMediaRefs(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob")
	c := direct(t, s, "alice", "bob", "c1", at(0))
	must(t, "CreateMedia", s.CreateMedia(ctx, media("m1", "alice", at(1))))
	for _, r := range []storage.MediaRef{ref("m1", c.ID, 7), ref("m1", c.ID, 3), ref("m1", c.ID, 7)} {
		must(t, fmt.Sprint("AddMediaRef ", r), s.AddMediaRef(ctx, r))
	}
	refs, err := s.MediaRefs(ctx, "m1")
	must(t, "MediaRefs", err)
	if fmt.Sprint(refs) != "[{m1 c1 3} {m1 c1 7}]" {
		t.Fatalf("MediaRefs = %v", refs)
	}
	checkErr(t, "AddMediaRef unknown media", s.AddMediaRef(ctx, ref("nope", c.ID, 1)), storage.ErrNotFound)
	checkErr(t, "AddMediaRef unknown conversation", s.AddMediaRef(ctx, ref("m1", "nope", 1)), storage.ErrNotFound)

	must(t, "DeleteMedia", s.DeleteMedia(ctx, "m1"))
	_, err = s.GetMedia(ctx, "m1")
	checkErr(t, "GetMedia after delete", err, storage.ErrNotFound)
	refs, err = s.MediaRefs(ctx, "m1")
	must(t, "MediaRefs after delete", err)
	if len(refs) != 0 {
		t.Fatalf("MediaRefs after delete = %v", refs)
	}
	checkErr(t, "DeleteMedia again", s.DeleteMedia(ctx, "m1"), storage.ErrNotFound)
	// The id is free again (refs did not survive).
	must(t, "CreateMedia reusing id", s.CreateMedia(ctx, media("m1", "bob", at(2))))
}

func testCanReadMedia(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob", "carol", "dave", "eve")
	g := group(t, s, "g1", "alice", []string{"bob", "carol"}, at(0)) // seq 1
	appendOK(t, s, text(g.ID, "alice", "t2", at(1)))                 // seq 2
	must(t, "CreateMedia", s.CreateMedia(ctx, media("m1", "alice", at(1))))
	must(t, "AddMediaRef", s.AddMediaRef(ctx, ref("m1", g.ID, 2)))
	// carol leaves after seeing seq 2; dave joins after it.
	_, err := s.RemoveMember(ctx, g.ID, "carol", note(g.ID, "alice", "rm-carol", at(2))) // seq 3
	must(t, "RemoveMember", err)
	_, err = s.AddMember(ctx, g.ID, "dave", storage.RoleMember, maxMembers, note(g.ID, "alice", "add-dave", at(3))) // seq 4
	must(t, "AddMember", err)
	// A second media sent after carol left: she must not see it.
	must(t, "CreateMedia", s.CreateMedia(ctx, media("m2", "bob", at(4))))
	appendOK(t, s, text(g.ID, "bob", "t5", at(4))) // seq 5
	must(t, "AddMediaRef", s.AddMediaRef(ctx, ref("m2", g.ID, 5)))
	// An unsent media is its owner's alone.
	must(t, "CreateMedia", s.CreateMedia(ctx, media("m3", "eve", at(5))))

	tests := []struct {
		media, user string
		want        bool
	}{
		{"m1", "alice", true},  // owner and member
		{"m1", "bob", true},    // member
		{"m1", "carol", true},  // left after seq 2: still sees it
		{"m1", "dave", false},  // joined at seq 4
		{"m1", "eve", false},   // never a member
		{"m2", "bob", true},    // owner
		{"m2", "alice", true},  // member
		{"m2", "dave", true},   // joined before seq 5
		{"m2", "carol", false}, // left at seq 3
		{"m3", "eve", true},
		{"m3", "alice", false},
		{"missing", "alice", false},
	}
	for _, tt := range tests {
		got, err := s.CanReadMedia(ctx, tt.media, tt.user)
		must(t, "CanReadMedia", err)
		if got != tt.want {
			t.Errorf("CanReadMedia(%s, %s) = %v, want %v", tt.media, tt.user, got, tt.want)
		}
	}
}

func testUnreferencedMedia(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob")
	c := direct(t, s, "alice", "bob", "c1", at(0))
	for i, id := range []string{"old2", "old1", "ref", "new"} {
		created := at(int64(i))
		if id == "new" {
			created = at(10_000)
		}
		must(t, "CreateMedia "+id, s.CreateMedia(ctx, media(id, "alice", created)))
	}
	must(t, "AddMediaRef", s.AddMediaRef(ctx, ref("ref", c.ID, 1)))
	ids := func(limit int) string {
		t.Helper()
		got, err := s.UnreferencedMedia(ctx, at(5_000), limit)
		must(t, "UnreferencedMedia", err)
		var out []string
		for _, m := range got {
			out = append(out, m.ID)
		}
		return fmt.Sprint(out)
	}
	if got := ids(0); got != "[old2 old1]" {
		t.Fatalf("UnreferencedMedia = %s, want [old2 old1] (oldest first)", got)
	}
	if got := ids(1); got != "[old2]" {
		t.Fatalf("UnreferencedMedia limit 1 = %s", got)
	}
}

func testMediaUsage(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob")
	day := time.Date(2026, 11, 30, 23, 59, 0, 0, time.UTC)
	next := day.Add(2 * time.Minute) // the next UTC day
	steps := []struct {
		user  string
		day   time.Time
		bytes int64
		want  bool
	}{
		{"alice", day, 60, true},
		{"alice", day.Add(-23 * time.Hour), 40, true},                // the same UTC day: 100 of 100
		{"alice", day, 1, false},                                     // over the limit: not added
		{"bob", day, 100, true},                                      // users count apart
		{"alice", next, 100, true},                                   // a new day
		{"alice", next, 101, false},                                  // alone above the limit
		{"alice", day.In(time.FixedZone("UTC+2", 2*3600)), 1, false}, // the same instant elsewhere is the same UTC day
	}
	for i, st := range steps {
		got, err := s.AddMediaUsage(ctx, st.user, st.day, st.bytes, 100)
		must(t, "AddMediaUsage", err)
		if got != st.want {
			t.Fatalf("step %d: AddMediaUsage(%s, %v, %d) = %v, want %v", i, st.user, st.day, st.bytes, got, st.want)
		}
	}
	// Refused additions left nothing behind: 100 more on the next day fails.
	if ok, err := s.AddMediaUsage(ctx, "alice", next, 1, 100); err != nil || ok {
		t.Fatalf("next day after 100 bytes: %v, %v", ok, err)
	}
	n, err := s.PruneMediaUsage(ctx, next)
	must(t, "PruneMediaUsage", err)
	if n != 2 {
		t.Fatalf("PruneMediaUsage removed %d user-days, want 2 (alice and bob on the first day)", n)
	}
	if ok, err := s.AddMediaUsage(ctx, "alice", day, 100, 100); err != nil || !ok {
		t.Fatalf("a pruned day starts again from 0: %v, %v", ok, err)
	}
}

func ref(mediaID, convID string, seq int64) storage.MediaRef {
	return storage.MediaRef{MediaID: mediaID, ConvID: convID, Seq: seq}
}

// testMediaKeyRotation: RewrapDataKeys rewraps media data keys too, to the
// same data key under the new master key.
func testMediaKeyRotation(t *testing.T, db EncryptionDB) {
	ctx := t.Context()
	oldKey, newKey := NewMasterKey(t), NewMasterKey(t)
	oldRing, err := keyring.New(oldKey)
	must(t, "keyring", err)
	newRing, err := keyring.New(newKey)
	must(t, "keyring", err)
	dataKey := NewMasterKey(t)
	w, err := oldRing.Wrap(dataKey)
	must(t, "Wrap", err)

	s := openOK(t, db, NewSealer(t, oldKey))
	createUsers(t, s, "alice")
	for _, id := range []string{"m1", "m2"} {
		m := media(id, "alice", at(1))
		m.WrappedKey = w.String()
		must(t, "CreateMedia", s.CreateMedia(ctx, m))
	}
	closeOK(t, s)

	s = openOK(t, db, NewSealer(t, newKey, oldKey))
	n, err := s.RewrapDataKeys(ctx)
	must(t, "RewrapDataKeys", err)
	if n != 2 {
		t.Errorf("RewrapDataKeys = %d, want 2 (the media keys)", n)
	}
	if n, err := s.RewrapDataKeys(ctx); err != nil || n != 0 {
		t.Errorf("second RewrapDataKeys = %d, %v; want 0, nil", n, err)
	}
	for _, id := range []string{"m1", "m2"} {
		m, err := s.GetMedia(ctx, id)
		must(t, "GetMedia", err)
		nw, err := keyring.ParseWrapped(m.WrappedKey)
		must(t, "ParseWrapped", err)
		got, err := newRing.Unwrap(nw)
		must(t, "Unwrap under the new master key", err)
		if !bytes.Equal(got, dataKey) {
			t.Fatalf("%s: rewrapped key unwraps to another data key", id)
		}
	}
	closeOK(t, s)
}

// testMediaShred: shredding a conversation deletes the media sent only
// there (their keys with them); media also sent elsewhere stay.
func testMediaShred(t *testing.T, db EncryptionDB) {
	ctx := t.Context()
	s := openOK(t, db, NewSealer(t, NewMasterKey(t)))
	defer closeOK(t, s)
	createUsers(t, s, "alice", "bob", "carol")
	ab := direct(t, s, "alice", "bob", "ab", at(0))
	g := group(t, s, "g", "alice", []string{"carol"}, at(0))
	for _, id := range []string{"only-ab", "both", "only-g", "unsent"} {
		must(t, "CreateMedia", s.CreateMedia(ctx, media(id, "alice", at(1))))
	}
	for _, r := range []storage.MediaRef{ref("only-ab", ab.ID, 1), ref("both", ab.ID, 2), ref("both", g.ID, 2), ref("only-g", g.ID, 3)} {
		must(t, "AddMediaRef", s.AddMediaRef(ctx, r))
	}
	_, err := s.ShredConversation(ctx, ab.ID)
	must(t, "ShredConversation", err)
	for id, want := range map[string]bool{"only-ab": false, "both": true, "only-g": true, "unsent": true} {
		_, err := s.GetMedia(ctx, id)
		if got := err == nil; got != want {
			t.Errorf("media %s after shredding ab: exists %v (%v), want %v", id, got, err, want)
		}
	}
}
