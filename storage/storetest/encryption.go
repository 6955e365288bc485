package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/msgrhq/msgr/keyring"
	"github.com/msgrhq/msgr/storage"
	"github.com/msgrhq/msgr/storage/seal"
)

// NewMasterKey returns a random master key.
func NewMasterKey(t testing.TB) []byte {
	t.Helper()
	k, err := keyring.NewDataKey() // same size and source as a master key
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// NewSealer returns a sealer over a keyring of current and previous keys.
func NewSealer(t testing.TB, current []byte, previous ...[]byte) storage.Sealer {
	t.Helper()
	ring, err := keyring.New(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return seal.New(ring, 0)
}

// EncryptionDB is one database of a store under test, with raw access to
// its messages table that bypasses the store.
type EncryptionDB interface {
	// Open opens the store on the database; nil sealer means plaintext
	// mode. The test closes the store.
	Open(t *testing.T, sealer storage.Sealer) (storage.Store, error)
	// RawBody returns the body column of a message as stored.
	RawBody(t *testing.T, convID string, seq int64) []byte
	// SetRawBody overwrites the body column of a message.
	SetRawBody(t *testing.T, convID string, seq int64, body []byte)
}

// RunEncryption runs the encryption-at-rest tests. newDB returns a new,
// empty database on every call.
func RunEncryption(t *testing.T, newDB func(t *testing.T) EncryptionDB) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, db EncryptionDB)
	}{
		{"NotPlaintextAtRest", testNotPlaintextAtRest},
		{"SwappedBodiesDetected", testSwappedBodiesDetected},
		{"WrongMasterKeyRefused", testWrongMasterKeyRefused},
		{"Reopen", testEncryptedReopen},
		{"Rotation", testRotation},
		{"Shred", testShred},
		{"PlaintextUpgrade", testPlaintextUpgrade},
		{"MediaKeyRotation", testMediaKeyRotation}, // media.go
		{"MediaShred", testMediaShred},             // media.go
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newDB(t)) })
	}
}

// marker is in every test message body; it must never be found at rest.
const marker = "MARKER-ATTACK-AT-DAWN"

func secretText(convID, sender, cmid string, ms int64) storage.NewMessage {
	m := text(convID, sender, cmid, at(ms))
	m.Body = []byte(fmt.Sprintf(`{"type":"text","text":"%s %s"}`, marker, cmid))
	return m
}

func openOK(t *testing.T, db EncryptionDB, sealer storage.Sealer) storage.Store {
	t.Helper()
	s, err := db.Open(t, sealer)
	must(t, "Open", err)
	return s
}

func closeOK(t *testing.T, s storage.Store) {
	t.Helper()
	must(t, "Close", s.Close())
}

// fixture writes a direct conversation "ab" with two secret messages and a
// group "g" whose notes carry the marker, and returns what was stored.
func fixture(t *testing.T, s storage.Store) (ab, g []storage.Message) {
	t.Helper()
	ctx := t.Context()
	createUsers(t, s, "alice", "bob", "carol")
	direct(t, s, "alice", "bob", "ab", at(0))
	ab = appendOK(t, s, secretText("ab", "alice", "m1", 1), secretText("ab", "bob", "m2", 2))
	conv := storage.Conversation{ID: "g", Kind: storage.KindGroup, Title: "group g", CreatedBy: "alice", CreatedAt: at(3)}
	n := note("g", "alice", "create", at(3))
	n.Body = []byte(`{"type":"system","title":"` + marker + `"}`)
	_, created, err := s.CreateGroup(ctx, conv, []string{"bob"}, maxMembers, n)
	must(t, "CreateGroup", err)
	checkMessage(t, "CreateGroup note", created, stored(n, 1))
	n2 := note("g", "alice", "add-carol", at(4))
	n2.Body = []byte(`{"type":"system","user":"carol","by":"` + marker + `"}`)
	added, err := s.AddMember(ctx, "g", "carol", storage.RoleMember, maxMembers, n2)
	must(t, "AddMember", err)
	checkMessage(t, "AddMember note", added, stored(n2, 2))
	n3 := note("g", "alice", "remove-carol", at(5))
	n3.Body = []byte(`{"type":"system","user":"carol","by":"` + marker + `"}`)
	removed, err := s.RemoveMember(ctx, "g", "carol", n3)
	must(t, "RemoveMember", err)
	checkMessage(t, "RemoveMember note", removed, stored(n3, 3))
	g = append([]storage.Message{created, added, removed}, appendOK(t, s, secretText("g", "bob", "m3", 6))...)
	return ab, g
}

// checkReadable checks that reads return the fixture's plaintext.
func checkReadable(t *testing.T, s storage.Store, ab, g []storage.Message) {
	t.Helper()
	ctx := t.Context()
	got, err := s.MessagesAfter(ctx, "ab", 0, 100, 0)
	must(t, "MessagesAfter ab", err)
	checkMessages(t, "MessagesAfter ab", got, ab)
	got, err = s.MessagesBefore(ctx, "g", 100, 1, 0)
	must(t, "MessagesBefore g", err)
	want := make([]storage.Message, len(g))
	for i := range g {
		want[i] = g[len(g)-1-i]
	}
	checkMessages(t, "MessagesBefore g", got, want)
}

func checkNotPlaintext(t *testing.T, db EncryptionDB, msgs []storage.Message) {
	t.Helper()
	for _, m := range msgs {
		raw := db.RawBody(t, m.ConvID, m.Seq)
		if len(raw) == 0 {
			t.Fatalf("raw body of %s/%d is empty", m.ConvID, m.Seq)
		}
		if bytes.Contains(raw, []byte(marker)) || bytes.Contains(raw, m.Body) || bytes.Contains(raw, []byte(`"type"`)) {
			t.Errorf("raw body of %s/%d is plaintext: %q", m.ConvID, m.Seq, raw)
		}
	}
}

func testNotPlaintextAtRest(t *testing.T, db EncryptionDB) {
	s := openOK(t, db, NewSealer(t, NewMasterKey(t)))
	defer closeOK(t, s)
	ab, g := fixture(t, s)
	checkNotPlaintext(t, db, append(ab, g...))
	checkReadable(t, s, ab, g)

	// A retried send returns the earlier message, decrypted.
	res, err := s.AppendMessages(t.Context(), []storage.NewMessage{secretText("ab", "alice", "m1", 9)})
	must(t, "AppendMessages duplicate", err)
	if !res[0].Duplicate {
		t.Fatalf("retry was not a duplicate: %+v", res[0])
	}
	checkMessage(t, "duplicate", res[0].Message, ab[0])
}

func testSwappedBodiesDetected(t *testing.T, db EncryptionDB) {
	s := openOK(t, db, NewSealer(t, NewMasterKey(t)))
	defer closeOK(t, s)
	ab, g := fixture(t, s)
	ctx := t.Context()

	// Swap two bodies of one conversation: same key, other seq.
	b1, b2 := db.RawBody(t, "ab", 1), db.RawBody(t, "ab", 2)
	db.SetRawBody(t, "ab", 1, b2)
	db.SetRawBody(t, "ab", 2, b1)
	_, err := s.MessagesAfter(ctx, "ab", 0, 100, 0)
	checkErr(t, "MessagesAfter after swapping bodies", err, storage.ErrUndecryptable)
	_, err = s.MessagesBefore(ctx, "ab", 100, 1, 0)
	checkErr(t, "MessagesBefore after swapping bodies", err, storage.ErrUndecryptable)
	db.SetRawBody(t, "ab", 1, b1)
	db.SetRawBody(t, "ab", 2, b2)
	checkReadable(t, s, ab, g)

	// Move a body to another conversation at the same seq.
	g4 := db.RawBody(t, "g", 4)
	db.SetRawBody(t, "g", 1, db.RawBody(t, "ab", 1))
	_, err = s.MessagesAfter(ctx, "g", 0, 100, 0)
	checkErr(t, "MessagesAfter after moving a body", err, storage.ErrUndecryptable)

	// Flip one bit.
	g4[len(g4)-1] ^= 1
	db.SetRawBody(t, "g", 4, g4)
	_, err = s.MessagesAfter(ctx, "g", 3, 100, 0)
	checkErr(t, "MessagesAfter after a flipped bit", err, storage.ErrUndecryptable)
}

func testWrongMasterKeyRefused(t *testing.T, db EncryptionDB) {
	right := NewMasterKey(t)
	s := openOK(t, db, NewSealer(t, right))
	fixture(t, s)
	closeOK(t, s)

	wrong := NewMasterKey(t)
	s, err := db.Open(t, NewSealer(t, wrong))
	if err == nil {
		s.Close()
		t.Fatal("Open with the wrong master key succeeded")
	}
	checkErr(t, "Open with the wrong master key", err, storage.ErrWrongMasterKey)
	for _, id := range []string{keyring.KeyID(right), keyring.KeyID(wrong)} {
		if !strings.Contains(err.Error(), id) {
			t.Errorf("error %q does not name key id %s", err, id)
		}
	}

	s, err = db.Open(t, nil)
	if err == nil {
		s.Close()
		t.Fatal("Open without a master key succeeded on an encrypted database")
	}
	checkErr(t, "Open without a master key", err, storage.ErrEncrypted)
}

func testEncryptedReopen(t *testing.T, db EncryptionDB) {
	key := NewMasterKey(t)
	s := openOK(t, db, NewSealer(t, key))
	ab, g := fixture(t, s)
	closeOK(t, s)

	s = openOK(t, db, NewSealer(t, key))
	defer closeOK(t, s)
	checkReadable(t, s, ab, g)
	// The conversations keep their keys: new messages are readable too.
	more := appendOK(t, s, secretText("ab", "bob", "m4", 10))
	checkReadable(t, s, append(ab, more...), g)
	checkNotPlaintext(t, db, more)
}

func testRotation(t *testing.T, db EncryptionDB) {
	ctx := t.Context()
	oldKey, newKey := NewMasterKey(t), NewMasterKey(t)
	s := openOK(t, db, NewSealer(t, oldKey))
	ab, g := fixture(t, s)
	closeOK(t, s)
	rawBefore := db.RawBody(t, "ab", 1)

	s = openOK(t, db, NewSealer(t, newKey, oldKey))
	n, err := s.RewrapDataKeys(ctx)
	must(t, "RewrapDataKeys", err)
	if n != 2 {
		t.Errorf("RewrapDataKeys rewrapped %d keys, want 2 (one per conversation)", n)
	}
	if n, err := s.RewrapDataKeys(ctx); err != nil || n != 0 {
		t.Errorf("second RewrapDataKeys = %d, %v; want 0, nil", n, err)
	}
	checkReadable(t, s, ab, g)
	closeOK(t, s)
	if !bytes.Equal(db.RawBody(t, "ab", 1), rawBefore) {
		t.Error("rotation rewrote a message body; it must only rewrap keys")
	}

	s = openOK(t, db, NewSealer(t, newKey))
	checkReadable(t, s, ab, g)
	closeOK(t, s)

	s, err = db.Open(t, NewSealer(t, oldKey))
	if err == nil {
		s.Close()
		t.Fatal("Open with the retired master key succeeded after rotation")
	}
	checkErr(t, "Open with the retired master key", err, storage.ErrWrongMasterKey)
}

func testShred(t *testing.T, db EncryptionDB) {
	ctx := t.Context()
	key := NewMasterKey(t)
	s := openOK(t, db, NewSealer(t, key))
	ab, g := fixture(t, s)

	n, err := s.ShredConversation(ctx, "ab")
	must(t, "ShredConversation", err)
	if n != 1 {
		t.Errorf("ShredConversation deleted %d keys, want 1", n)
	}
	checkShredded := func(s storage.Store, wantLive []storage.Message) {
		t.Helper()
		got, err := s.MessagesAfter(ctx, "ab", 0, 100, 0)
		must(t, "MessagesAfter shredded", err)
		if len(got) != len(ab)+len(wantLive) {
			t.Fatalf("MessagesAfter shredded: %d messages, want %d", len(got), len(ab)+len(wantLive))
		}
		for i, m := range got[:len(ab)] {
			want := ab[i]
			want.Body = storage.ShreddedBody
			checkMessage(t, fmt.Sprintf("shredded[%d]", i), m, want)
		}
		checkMessages(t, "after shredding", got[len(ab):], wantLive)
		// Other conversations are untouched.
		got, err = s.MessagesAfter(ctx, "g", 0, 100, 0)
		must(t, "MessagesAfter g", err)
		checkMessages(t, "MessagesAfter g", got, g)
	}
	checkShredded(s, nil)

	// The conversation goes on under a new key.
	live := appendOK(t, s, secretText("ab", "alice", "m5", 20))
	checkShredded(s, live)
	checkNotPlaintext(t, db, live)
	// A retry of a shredded message is still a duplicate, not a new send.
	res, err := s.AppendMessages(ctx, []storage.NewMessage{secretText("ab", "alice", "m1", 21)})
	must(t, "AppendMessages retry of a shredded message", err)
	if !res[0].Duplicate || !bytes.Equal(res[0].Message.Body, storage.ShreddedBody) {
		t.Errorf("retry of a shredded message: duplicate %v body %q", res[0].Duplicate, res[0].Message.Body)
	}
	closeOK(t, s)

	s = openOK(t, db, NewSealer(t, key))
	defer closeOK(t, s)
	checkShredded(s, live)
	_, err = s.ShredConversation(ctx, "nope")
	checkErr(t, "ShredConversation of an unknown conversation", err, storage.ErrNotFound)
}

func testPlaintextUpgrade(t *testing.T, db EncryptionDB) {
	// A database written without encryption, as by a version before it.
	s := openOK(t, db, nil)
	ab, g := fixture(t, s)
	closeOK(t, s)
	if raw := db.RawBody(t, "ab", 1); !bytes.Equal(raw, ab[0].Body) {
		t.Fatalf("plaintext fixture: raw body %q", raw)
	}

	key := NewMasterKey(t)
	s = openOK(t, db, NewSealer(t, key))
	checkNotPlaintext(t, db, append(ab, g...))
	checkReadable(t, s, ab, g)
	more := appendOK(t, s, secretText("ab", "bob", "m6", 30))
	closeOK(t, s)

	s = openOK(t, db, NewSealer(t, key))
	defer closeOK(t, s)
	checkReadable(t, s, append(ab, more...), g)

	if s2, err := db.Open(t, nil); err == nil {
		s2.Close()
		t.Fatal("Open without a master key succeeded after the upgrade")
	} else if !errors.Is(err, storage.ErrEncrypted) {
		t.Fatalf("Open without a master key: %v, want ErrEncrypted", err)
	}
}

// V1Message returns the body of message seq (1..6) of conversation "ab"
// that the v1 upgrade fixtures store in plaintext, from alice.
func V1Message(seq int64) []byte {
	return []byte(fmt.Sprintf(`{"type":"text","text":"%s v1 message %d"}`, marker, seq))
}

// CheckUpgradedV1Messages checks a store opened with a master key on a v1
// database whose conversation "ab" held messages 1..6 with V1Message
// bodies in plaintext: they are encrypted at rest and read back intact.
func CheckUpgradedV1Messages(t *testing.T, s storage.Store, rawBody func(seq int64) []byte) {
	t.Helper()
	msgs, err := s.MessagesAfter(t.Context(), "ab", 0, 100, 0)
	must(t, "MessagesAfter ab", err)
	if len(msgs) != 6 {
		t.Fatalf("%d messages after the upgrade, want 6", len(msgs))
	}
	for i, m := range msgs {
		seq := int64(i + 1)
		if m.Seq != seq || !bytes.Equal(m.Body, V1Message(seq)) {
			t.Errorf("message %d after the upgrade: seq %d body %q", seq, m.Seq, m.Body)
		}
		if raw := rawBody(seq); bytes.Contains(raw, []byte(marker)) {
			t.Errorf("message %d is still plaintext at rest: %q", seq, raw)
		}
	}
}
