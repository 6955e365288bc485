package msgr

import (
	"sort"
	"time"

	"github.com/msgrhq/msgr/protocol"
)

// seqRange is the half-open range of sequence numbers (from, to], the same
// shape as a protocol.Cursor.
type seqRange struct{ from, to int64 }

// seqRanges is a sorted set of disjoint, non-adjacent ranges.
type seqRanges []seqRange

func (s seqRanges) contains(seq int64) bool {
	i := sort.Search(len(s), func(i int) bool { return s[i].to >= seq })
	return i < len(s) && s[i].from < seq
}

// add inserts (from, to], merging it with every range it overlaps or touches,
// so that (4,5] and (5,6] become (4,6].
func (s *seqRanges) add(from, to int64) {
	if to <= from {
		return
	}
	r := *s
	// First range that could merge: its end reaches from.
	i := sort.Search(len(r), func(i int) bool { return r[i].to >= from })
	j := i
	for j < len(r) && r[j].from <= to {
		from = min(from, r[j].from)
		to = max(to, r[j].to)
		j++
	}
	switch {
	case i == j:
		r = append(r, seqRange{})
		copy(r[i+1:], r[i:])
		r[i] = seqRange{from, to}
	default:
		r[i] = seqRange{from, to}
		r = append(r[:i+1], r[j:]...)
	}
	*s = r
}

// dropLowest keeps at most n ranges, forgetting the oldest messages first:
// forgetting only weakens deduplication, and delivery is at least once anyway.
func (s *seqRanges) dropLowest(n int) {
	if len(*s) > n {
		*s = append(seqRanges(nil), (*s)[len(*s)-n:]...)
	}
}

// convTrack is what the client knows about one conversation.
type convTrack struct {
	have  seqRanges // messages given to the application
	dirty bool      // have changed since the last acknowledgement was sent

	gapLow    int64     // have[0].to when the current gap was first seen
	gapSince  time.Time // zero while there is no gap
	gapSynced bool      // a sync was already requested for this gap
}

// tracker records, per conversation, which messages the application has
// been given. It deduplicates deliveries (the same message may arrive live,
// redelivered by the MQTT session and in a sync page) and produces the
// range acknowledgements the broker advances its cursors with. It is not
// safe for concurrent use.
type tracker struct {
	maxRanges int // per conversation; bounds memory when gaps never close
	convs     map[string]*convTrack
}

func newTracker(maxRanges int) *tracker {
	return &tracker{maxRanges: maxRanges, convs: make(map[string]*convTrack)}
}

// seen reports whether message seq of conv was already handed over.
func (t *tracker) seen(conv string, seq int64) bool {
	ct := t.convs[conv]
	return ct != nil && ct.have.contains(seq)
}

// add records that the application has every message of conv in (from, to].
// dirty means the broker has not been told yet.
func (t *tracker) add(conv string, from, to int64, dirty bool) {
	ct := t.convs[conv]
	if ct == nil {
		ct = &convTrack{}
		t.convs[conv] = ct
	}
	ct.have.add(from, to)
	ct.have.dropLowest(t.maxRanges)
	if dirty {
		ct.dirty = true
	}
}

// takeDirty returns cursors for every range of every conversation that
// changed since the last call, and clears the dirty marks. Every range is
// sent, not just the new one: once a gap closes, the merged range is what
// lets the broker's cursor move past it.
func (t *tracker) takeDirty() []protocol.Cursor {
	var cs []protocol.Cursor
	for _, conv := range t.sortedConvs() {
		ct := t.convs[conv]
		if !ct.dirty {
			continue
		}
		ct.dirty = false
		for _, r := range ct.have {
			cs = append(cs, protocol.Cursor{Conv: conv, From: r.from, Seq: r.to})
		}
	}
	return cs
}

// markDirty makes the next takeDirty include convs again, after an
// acknowledgement failed.
func (t *tracker) markDirty(convs []string) {
	for _, conv := range convs {
		if ct := t.convs[conv]; ct != nil {
			ct.dirty = true
		}
	}
}

// gapsToSync returns the conversations whose lowest gap has stayed open for
// at least wait, once per gap. A gap in live delivery normally closes by
// itself (a sync page catching up); one that does not means a message was
// lost on the way and a sync will fetch it.
func (t *tracker) gapsToSync(now time.Time, wait time.Duration) []string {
	var due []string
	for _, conv := range t.sortedConvs() {
		ct := t.convs[conv]
		if len(ct.have) < 2 {
			ct.gapSince, ct.gapSynced = time.Time{}, false
			continue
		}
		if ct.gapSince.IsZero() || ct.gapLow != ct.have[0].to {
			ct.gapLow, ct.gapSince, ct.gapSynced = ct.have[0].to, now, false
			continue
		}
		if !ct.gapSynced && now.Sub(ct.gapSince) >= wait {
			ct.gapSynced = true
			due = append(due, conv)
		}
	}
	return due
}

func (t *tracker) sortedConvs() []string {
	convs := make([]string, 0, len(t.convs))
	for conv := range t.convs {
		convs = append(convs, conv)
	}
	sort.Strings(convs)
	return convs
}

// pageCursors acknowledges a sync page: for each conversation in it,
// {conv, first-1, last}. A page starts right after the device's cursor, so
// these always apply.
func pageCursors(msgs []protocol.Message) []protocol.Cursor {
	var cs []protocol.Cursor
	idx := make(map[string]int)
	for _, m := range msgs {
		i, ok := idx[m.Conv]
		if !ok {
			idx[m.Conv] = len(cs)
			cs = append(cs, protocol.Cursor{Conv: m.Conv, From: m.Seq - 1, Seq: m.Seq})
			continue
		}
		cs[i].From = min(cs[i].From, m.Seq-1)
		cs[i].Seq = max(cs[i].Seq, m.Seq)
	}
	return cs
}
