package storetest

import (
	"testing"

	"github.com/msgrhq/msgr/storage"
)

// CheckUpgradedFromV1 checks a store opened on a schema-v1 database that
// held: users alice and bob, their direct conversation "ab" with last_seq 6,
// and cursors of alice's devices at 3 and 5 (bob has none). Each store's
// upgrade test writes that data with its own SQL, then calls this.
func CheckUpgradedFromV1(t *testing.T, s storage.Store) {
	t.Helper()
	ctx := t.Context()
	u, err := s.GetUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if u.Settings != storage.DefaultSettings() || !u.LastSeen.IsZero() {
		t.Errorf("upgraded user: settings %+v, last seen %v; want defaults, never", u.Settings, u.LastSeen)
	}
	for user, want := range map[string]int64{"alice": 5, "bob": 0} {
		m, err := s.GetMember(ctx, "ab", user)
		if err != nil {
			t.Fatal(err)
		}
		// What was delivered before the upgrade counts as read.
		if m.Delivered != want || m.Read != want {
			t.Errorf("upgraded member %s: Delivered %d, Read %d; want %d for both", user, m.Delivered, m.Read, want)
		}
	}
	// alice engaged (her devices had caught up), bob never did: only
	// alice's contacts include the other.
	for user, want := range map[string]string{"alice": "bob", "bob": ""} {
		contacts, err := s.Contacts(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		if (want == "" && len(contacts) != 0) || (want != "" && (len(contacts) != 1 || contacts[0] != want)) {
			t.Errorf("Contacts(%s) = %v, want [%s]", user, contacts, want)
		}
	}
}
