package cluster

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestGapTracker(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type obs struct {
		conv string
		seq  int64
		at   time.Duration
	}
	tests := []struct {
		name string
		obs  []obs
		at   time.Duration
		want []string
	}{
		{"contiguous", []obs{{"c", 5, 0}, {"c", 6, 0}, {"c", 7, 0}}, 10 * time.Second, nil},
		{"reordered and filled", []obs{{"c", 5, 0}, {"c", 7, 0}, {"c", 6, time.Second}}, 10 * time.Second, nil},
		{"gap too young", []obs{{"c", 5, 0}, {"c", 7, 0}}, time.Second, nil},
		{"gap stays open", []obs{{"c", 5, 0}, {"c", 7, 0}}, gapWait, []string{"u"}},
		{"duplicates are no gap", []obs{{"c", 5, 0}, {"c", 5, 0}, {"c", 4, 0}}, 10 * time.Second, nil},
		{"conversations apart", []obs{{"a", 1, 0}, {"b", 9, 0}, {"a", 2, 0}, {"b", 10, 0}}, 10 * time.Second, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGapTracker()
			for _, o := range tt.obs {
				g.observe("u", o.conv, o.seq, t0.Add(o.at))
			}
			if got := g.due(t0.Add(tt.at), gapWait); !slices.Equal(got, tt.want) {
				t.Fatalf("due = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestGapTrackerResetsAfterNudge(t *testing.T) {
	t0 := time.Unix(1000, 0)
	g := newGapTracker()
	g.observe("u", "c", 1, t0)
	g.observe("u", "c", 3, t0)
	if got := g.due(t0.Add(gapWait), gapWait); len(got) != 1 {
		t.Fatalf("due = %v, want [u]", got)
	}
	// The nudge covered the gap: the next seq continues without one.
	g.observe("u", "c", 4, t0.Add(gapWait))
	if got := g.due(t0.Add(10*gapWait), gapWait); len(got) != 0 {
		t.Fatalf("due after nudge = %v, want none", got)
	}
	g.forget("u")
	g.observe("u", "c", 10, t0) // a new baseline, not a gap
	if got := g.due(t0.Add(10*gapWait), gapWait); len(got) != 0 {
		t.Fatalf("due after forget = %v, want none", got)
	}
}

func TestMessageRef(t *testing.T) {
	tests := []struct {
		payload string
		conv    string
		seq     int64
		ok      bool
	}{
		{`{"v":1,"type":"message","msg":{"conv":"C1","seq":7,"body":{"type":"text","text":"\"type\":\"receipt\""}}}`, "C1", 7, true},
		{`{"v":1,"type":"receipt","receipt":{"conv":"C1"},"x":"\"type\":\"message\""}`, "", 0, false},
		{`{"v":1,"type":"message"}`, "", 0, false},
		{`not json "type":"message"`, "", 0, false},
	}
	for _, tt := range tests {
		conv, seq, ok := messageRef([]byte(tt.payload))
		if conv != tt.conv || seq != tt.seq || ok != tt.ok {
			t.Errorf("messageRef(%s) = %q, %d, %v; want %q, %d, %v", tt.payload, conv, seq, ok, tt.conv, tt.seq, tt.ok)
		}
	}
}

func TestEnvelope(t *testing.T) {
	for _, e := range []envelope{
		{kind: kindEvent, qos: 1, name: "alice", payload: []byte(`{"v":1}`)},
		{kind: kindEvent, qos: 0, name: "bob", payload: nil},
		{kind: kindNudge, name: "carol"},
		{kind: kindNudgeAll},
		{kind: kindInvalid, name: "01HZX"},
		{kind: kindKick, name: "device:alice/phone", payload: []byte{0x98}},
	} {
		got, err := decodeEnvelope(e.encode())
		if err != nil || got.kind != e.kind || got.qos != e.qos || got.name != e.name || string(got.payload) != string(e.payload) {
			t.Errorf("round trip of %+v: %+v, %v", e, got, err)
		}
	}
	for _, b := range [][]byte{nil, {'e', 1, 0}, {'e', 1, 0, 9, 'a'}, {'z', 0, 0, 0}, {'e', 2, 0, 0}} {
		if _, err := decodeEnvelope(b); !errors.Is(err, errEnvelope) {
			t.Errorf("decode %v: %v, want errEnvelope", b, err)
		}
	}
}

func TestNewClientURLs(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"redis://127.0.0.1:6379/0", true},
		{"rediss://user:secret@redis.example:6380/1", true},
		{"redis+sentinel://s1:26379?master_name=mymaster&addr=s2:26379", true},
		{"redis+sentinel://s1:26379", false},
		{"redis+cluster://c1:7000?addr=c2:7000&addr=c3:7000", true},
		{"rediss+cluster://c1:7000", true},
		{"http://127.0.0.1:6379", false},
		{"redis+gossip://x:1", false},
		{"127.0.0.1:6379", false},
		{"redis://127.0.0.1:6379/0?bogus=1", false},
	}
	for _, tt := range tests {
		err := ValidateURL(tt.url)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateURL(%q) = %v, want ok=%v", tt.url, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrBadURL) {
			t.Errorf("ValidateURL(%q) = %v, want ErrBadURL", tt.url, err)
		}
	}
}

func TestNodeID(t *testing.T) {
	for id, ok := range map[string]bool{"n1": true, "msgrd-7f3a.eu_1": true, "": false, "a|b": false, "a/b": false, "ä": false} {
		if err := ValidateNodeID(id); (err == nil) != ok {
			t.Errorf("ValidateNodeID(%q) = %v, want ok=%v", id, err, ok)
		}
	}
}

func TestRedact(t *testing.T) {
	if got := redact("redis://user:secret@host:1/0"); got != "redis://***@host:1/0" {
		t.Errorf("redact = %q", got)
	}
}
