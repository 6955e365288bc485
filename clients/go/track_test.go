package msgr

import (
	"reflect"
	"testing"
	"time"

	"github.com/msgrhq/msgr/protocol"
)

func TestSeqRangesAdd(t *testing.T) {
	tests := []struct {
		name string
		add  []seqRange
		want seqRanges
	}{
		{"single", []seqRange{{4, 5}}, seqRanges{{4, 5}}},
		{"empty range ignored", []seqRange{{5, 5}}, nil},
		{"adjacent after", []seqRange{{4, 5}, {5, 6}}, seqRanges{{4, 6}}},
		{"adjacent before: 6 then 5", []seqRange{{5, 6}, {4, 5}}, seqRanges{{4, 6}}},
		{"gap kept", []seqRange{{4, 5}, {6, 7}}, seqRanges{{4, 5}, {6, 7}}},
		{"gap filled", []seqRange{{4, 5}, {6, 7}, {5, 6}}, seqRanges{{4, 7}}},
		{"inserted in the middle", []seqRange{{0, 2}, {8, 9}, {4, 5}}, seqRanges{{0, 2}, {4, 5}, {8, 9}}},
		{"inserted first", []seqRange{{8, 9}, {1, 2}}, seqRanges{{1, 2}, {8, 9}}},
		{"spanning several", []seqRange{{1, 2}, {3, 4}, {5, 6}, {8, 9}, {0, 7}}, seqRanges{{0, 7}, {8, 9}}},
		{"contained", []seqRange{{0, 10}, {3, 4}}, seqRanges{{0, 10}}},
		{"duplicate", []seqRange{{3, 4}, {3, 4}}, seqRanges{{3, 4}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s seqRanges
			for _, r := range tt.add {
				s.add(r.from, r.to)
			}
			if !reflect.DeepEqual(s, tt.want) {
				t.Errorf("got %v, want %v", s, tt.want)
			}
		})
	}
}

func TestSeqRangesContains(t *testing.T) {
	s := seqRanges{{0, 3}, {5, 7}}
	for seq, want := range map[int64]bool{0: false, 1: true, 3: true, 4: false, 5: false, 6: true, 7: true, 8: false} {
		if got := s.contains(seq); got != want {
			t.Errorf("contains(%d) = %v, want %v", seq, got, want)
		}
	}
}

func TestSeqRangesDropLowest(t *testing.T) {
	s := seqRanges{{0, 1}, {2, 3}, {4, 5}}
	s.dropLowest(2)
	if want := (seqRanges{{2, 3}, {4, 5}}); !reflect.DeepEqual(s, want) {
		t.Errorf("got %v, want %v", s, want)
	}
}

func TestTrackerCoalescesAcks(t *testing.T) {
	tr := newTracker(maxRanges)
	// Live messages 6 then 5 arrive out of order before a flush.
	tr.add("c1", 5, 6, true)
	tr.add("c1", 4, 5, true)
	tr.add("c2", 0, 1, true)
	got := tr.takeDirty()
	want := []protocol.Cursor{{Conv: "c1", From: 4, Seq: 6}, {Conv: "c2", From: 0, Seq: 1}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("first flush: got %v, want %v", got, want)
	}
	if got := tr.takeDirty(); got != nil {
		t.Fatalf("second flush without news: got %v, want nothing", got)
	}

	// 8 arrives before 7; the gap range is acknowledged too, and once 7
	// fills the gap the merged range is what moves the cursor to 8.
	tr.add("c1", 7, 8, true)
	if got, want := tr.takeDirty(), []protocol.Cursor{{Conv: "c1", From: 4, Seq: 6}, {Conv: "c1", From: 7, Seq: 8}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("gap flush: got %v, want %v", got, want)
	}
	tr.add("c1", 6, 7, true)
	if got, want := tr.takeDirty(), []protocol.Cursor{{Conv: "c1", From: 4, Seq: 8}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("filled flush: got %v, want %v", got, want)
	}

	// Ranges known from sync pages are not acknowledged again, but a
	// failed acknowledgement is.
	tr.add("c3", 0, 100, false)
	if got := tr.takeDirty(); got != nil {
		t.Fatalf("page range: got %v, want nothing", got)
	}
	tr.markDirty([]string{"c3", "unknown"})
	if got, want := tr.takeDirty(), []protocol.Cursor{{Conv: "c3", Seq: 100}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after markDirty: got %v, want %v", got, want)
	}
}

func TestTrackerDedup(t *testing.T) {
	tr := newTracker(2)
	tr.add("c", 9, 10, true) // live 10 before the sync page with 1..9
	if tr.seen("c", 9) {
		t.Fatal("9 seen before it arrived")
	}
	tr.add("c", 0, 9, false)
	for seq := int64(1); seq <= 10; seq++ {
		if !tr.seen("c", seq) {
			t.Fatalf("%d not seen", seq)
		}
	}
	if tr.seen("c", 11) || tr.seen("other", 1) {
		t.Fatal("unseen messages reported seen")
	}
	// Bounded: with gaps that never close, the oldest ranges are forgotten.
	tr.add("c", 20, 21, false)
	tr.add("c", 30, 31, false)
	if tr.seen("c", 5) || !tr.seen("c", 21) || !tr.seen("c", 31) {
		t.Fatalf("ranges after overflow: %v", tr.convs["c"].have)
	}
}

func TestTrackerGapsToSync(t *testing.T) {
	const wait = time.Second
	t0 := time.Unix(1000, 0)
	tr := newTracker(maxRanges)
	tr.add("c", 0, 5, false)
	tr.add("c", 6, 7, true) // 6 missing
	steps := []struct {
		at   time.Duration
		want []string
	}{
		{0, nil},                         // gap noticed
		{wait / 2, nil},                  // not yet
		{wait, []string{"c"}},            // due
		{2 * wait, nil},                  // once per gap
		{2*wait + time.Millisecond, nil}, // still once
	}
	for _, s := range steps {
		if got := tr.gapsToSync(t0.Add(s.at), wait); !reflect.DeepEqual(got, s.want) {
			t.Fatalf("at %v: got %v, want %v", s.at, got, s.want)
		}
	}
	// The gap closes, a new one opens further on: it gets its own sync.
	tr.add("c", 5, 6, true)
	tr.add("c", 8, 9, true)
	if got := tr.gapsToSync(t0.Add(3*wait), wait); got != nil {
		t.Fatalf("new gap noticed: got %v", got)
	}
	if got := tr.gapsToSync(t0.Add(4*wait), wait); !reflect.DeepEqual(got, []string{"c"}) {
		t.Fatalf("new gap due: got %v", got)
	}
}

func TestPageCursors(t *testing.T) {
	msgs := []protocol.Message{
		{Conv: "a", Seq: 3}, {Conv: "a", Seq: 4}, {Conv: "b", Seq: 1}, {Conv: "a", Seq: 5}, {Conv: "b", Seq: 2},
	}
	want := []protocol.Cursor{{Conv: "a", From: 2, Seq: 5}, {Conv: "b", From: 0, Seq: 2}}
	if got := pageCursors(msgs); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := pageCursors(nil); got != nil {
		t.Errorf("empty page: got %v", got)
	}
}
