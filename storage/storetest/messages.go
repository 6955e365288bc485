package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/msgrhq/msgr/storage"
)

func testAppendMessages(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob", "carol")
	direct(t, s, "alice", "bob", "ab", at(0))
	direct(t, s, "alice", "carol", "ac", at(0))
	group(t, s, "g", "alice", []string{"bob"}, at(0))
	_, err := s.RemoveMember(ctx, "g", "bob", note("g", "alice", "remove-bob", at(1)))
	must(t, "RemoveMember", err)

	unicode := text("ab", "alice", "m1", at(10))
	unicode.Body = []byte(`{"text": "héllo 👋\n\"quoted\"",  "n" : 1}`)
	binary := text("ab", "alice", "m6", at(16))
	binary.Body = []byte{0, 0xff, '\n', 0x80, 0}
	empty := text("ac", "carol", "m8", at(18))
	empty.Body = []byte{}
	batch := []storage.NewMessage{
		unicode,
		text("ab", "bob", "m1", at(11)),   // same client id, other sender
		text("ac", "alice", "m1", at(12)), // same client id, other conversation
		text("nope", "alice", "m2", at(13)),
		text("ab", "carol", "m3", at(14)), // not a member
		text("g", "bob", "m4", at(15)),    // removed member
		binary,
		text("g", "alice", "m7", at(17)),
		empty,
	}
	want := []struct {
		seq int64
		err error
	}{
		{1, nil},
		{2, nil},
		{1, nil},
		{0, storage.ErrNotFound},
		{0, storage.ErrNotMember},
		{0, storage.ErrNotMember},
		{3, nil},
		{3, nil},
		{2, nil},
	}
	res, err := s.AppendMessages(ctx, batch)
	must(t, "AppendMessages", err)
	if len(res) != len(batch) {
		t.Fatalf("AppendMessages returned %d results for %d messages", len(res), len(batch))
	}
	for i, r := range res {
		if want[i].err != nil {
			checkErr(t, fmt.Sprintf("item %d", i), r.Err, want[i].err)
			continue
		}
		if r.Err != nil || r.Duplicate {
			t.Errorf("item %d: err %v, duplicate %v", i, r.Err, r.Duplicate)
			continue
		}
		checkMessage(t, fmt.Sprintf("item %d", i), r.Message, stored(batch[i], want[i].seq))
	}

	t.Run("last seq", func(t *testing.T) {
		checkLastSeq(t, s, "ab", 3)
		checkLastSeq(t, s, "ac", 2)
		checkLastSeq(t, s, "g", 3)
	})

	t.Run("round trip", func(t *testing.T) {
		msgs, err := s.MessagesAfter(ctx, "ab", 0, 10, 10)
		must(t, "MessagesAfter", err)
		checkMessages(t, "MessagesAfter(ab)", msgs, []storage.Message{stored(batch[0], 1), stored(batch[1], 2), stored(batch[6], 3)})
		msgs, err = s.MessagesAfter(ctx, "ac", 0, 10, 10)
		must(t, "MessagesAfter", err)
		checkMessages(t, "MessagesAfter(ac)", msgs, []storage.Message{stored(batch[2], 1), stored(batch[8], 2)})
	})

	t.Run("failed items took no seq", func(t *testing.T) {
		got := appendOK(t, s, text("ab", "bob", "m9", at(20)))
		if got[0].Seq != 4 {
			t.Errorf("next seq = %d, want 4", got[0].Seq)
		}
	})

	t.Run("empty batch", func(t *testing.T) {
		res, err := s.AppendMessages(ctx, nil)
		must(t, "AppendMessages(nil)", err)
		if len(res) != 0 {
			t.Errorf("AppendMessages(nil) = %+v", res)
		}
	})
}

func testAppendDuplicates(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob")
	direct(t, s, "alice", "bob", "ab", at(0))

	first := text("ab", "alice", "c1", at(1))
	appendOK(t, s, first)

	// A client retry: same key, but the broker assigns a new id and time and
	// the body may differ; the store keeps and returns the original.
	retry := first
	retry.ID = "retry-id"
	retry.CreatedAt = at(2)
	retry.Body = []byte(`{"text":"changed"}`)

	checkDup := func(t *testing.T, r storage.AppendResult, want storage.Message) {
		t.Helper()
		if r.Err != nil || !r.Duplicate {
			t.Fatalf("duplicate: err %v, duplicate %v", r.Err, r.Duplicate)
		}
		checkMessage(t, "duplicate", r.Message, want)
	}

	t.Run("across batches", func(t *testing.T) {
		res, err := s.AppendMessages(ctx, []storage.NewMessage{retry})
		must(t, "AppendMessages", err)
		checkDup(t, res[0], stored(first, 1))
		checkLastSeq(t, s, "ab", 1)
		msgs, err := s.MessagesAfter(ctx, "ab", 0, 10, 10)
		must(t, "MessagesAfter", err)
		checkMessages(t, "MessagesAfter", msgs, []storage.Message{stored(first, 1)})
	})

	t.Run("duplicate took no seq", func(t *testing.T) {
		got := appendOK(t, s, text("ab", "alice", "c2", at(3)))
		if got[0].Seq != 2 {
			t.Errorf("seq after duplicate = %d, want 2", got[0].Seq)
		}
	})

	t.Run("within one batch", func(t *testing.T) {
		m := text("ab", "bob", "c3", at(4))
		again := m
		again.ID = "again-id"
		res, err := s.AppendMessages(ctx, []storage.NewMessage{m, again, retry, text("ab", "bob", "c4", at(5))})
		must(t, "AppendMessages", err)
		if res[0].Err != nil || res[0].Duplicate {
			t.Fatalf("item 0: err %v, duplicate %v", res[0].Err, res[0].Duplicate)
		}
		checkMessage(t, "item 0", res[0].Message, stored(m, 3))
		checkDup(t, res[1], stored(m, 3))
		checkDup(t, res[2], stored(first, 1))
		if res[3].Err != nil || res[3].Duplicate || res[3].Message.Seq != 4 {
			t.Errorf("item 3: err %v, duplicate %v, seq %d; want new seq 4", res[3].Err, res[3].Duplicate, res[3].Message.Seq)
		}
		checkLastSeq(t, s, "ab", 4)
	})

	t.Run("concurrent retries store once", func(t *testing.T) {
		const n = 8
		results := make([]storage.AppendResult, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				m := text("ab", "alice", "raced", at(6))
				m.ID = fmt.Sprintf("raced-%d", i)
				res, err := s.AppendMessages(ctx, []storage.NewMessage{m})
				errs[i] = err
				if err == nil && len(res) == 1 {
					results[i] = res[0]
				}
			})
		}
		wg.Wait()
		fresh := 0
		for i, r := range results {
			must(t, "AppendMessages", errs[i])
			if r.Err != nil {
				t.Fatalf("retry %d: %v", i, r.Err)
			}
			if !r.Duplicate {
				fresh++
			}
			if r.Message.Seq != 5 || r.Message.ID != results[0].Message.ID {
				t.Errorf("retry %d stored as seq %d id %s; want all seq 5 with one id", i, r.Message.Seq, r.Message.ID)
			}
		}
		if fresh != 1 {
			t.Errorf("%d of %d concurrent retries stored a new message, want 1", fresh, n)
		}
		checkLastSeq(t, s, "ab", 5)
	})
}

// testAppendConcurrent checks that seq allocation is gapless and unique
// under concurrent writers, each call its own batch.
func testAppendConcurrent(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	createUsers(t, s, "alice", "bob")
	direct(t, s, "alice", "bob", "ab", at(0))

	const workers, calls = 8, 20
	seqsOf := make([][]int64, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			sender := []string{"alice", "bob"}[w%2]
			size := 1 + w%3 // batches of 1, 2 and 3 messages
			for c := range calls {
				batch := make([]storage.NewMessage, size)
				for i := range batch {
					batch[i] = text("ab", sender, fmt.Sprintf("w%d-c%d-%d", w, c, i), at(int64(c)))
				}
				res, err := s.AppendMessages(ctx, batch)
				if err == nil && len(res) != size {
					err = fmt.Errorf("%d results for %d messages", len(res), size)
				}
				if err != nil {
					errs[w] = err
					return
				}
				for _, r := range res {
					if r.Err != nil || r.Duplicate {
						errs[w] = fmt.Errorf("item: err %v, duplicate %v", r.Err, r.Duplicate)
						return
					}
					seqsOf[w] = append(seqsOf[w], r.Message.Seq)
				}
				// Within one batch, seqs are consecutive: nobody else
				// can interleave inside a transaction.
				for i := 1; i < len(res); i++ {
					if res[i].Message.Seq != res[i-1].Message.Seq+1 {
						errs[w] = fmt.Errorf("batch seqs %d, %d not consecutive", res[i-1].Message.Seq, res[i].Message.Seq)
						return
					}
				}
			}
		})
	}
	wg.Wait()

	var all []int64
	for w := range workers {
		must(t, fmt.Sprintf("worker %d", w), errs[w])
		all = append(all, seqsOf[w]...)
	}
	slices.Sort(all)
	for i, seq := range all {
		if seq != int64(i+1) {
			t.Fatalf("sorted seqs[%d] = %d, want %d (gap or repeat)", i, seq, i+1)
		}
	}
	n := int64(len(all))
	checkLastSeq(t, s, "ab", n)
	msgs, err := s.MessagesAfter(ctx, "ab", 0, n, int(n)+10)
	must(t, "MessagesAfter", err)
	if int64(len(msgs)) != n {
		t.Fatalf("MessagesAfter returned %d messages, want %d", len(msgs), n)
	}
	for i, m := range msgs {
		if m.Seq != int64(i+1) {
			t.Fatalf("MessagesAfter[%d].Seq = %d, want %d", i, m.Seq, i+1)
		}
	}
}

// history fills conversation "ab" with seqs 1..10 and "ac" with 1..3.
func history(t *testing.T, s storage.Store) []storage.Message {
	t.Helper()
	createUsers(t, s, "alice", "bob", "carol")
	direct(t, s, "alice", "bob", "ab", at(0))
	direct(t, s, "alice", "carol", "ac", at(0))
	var batch []storage.NewMessage
	for i := range 10 {
		batch = append(batch, text("ab", []string{"alice", "bob"}[i%2], fmt.Sprint("h", i), at(int64(i))))
	}
	for i := range 3 {
		batch = append(batch, text("ac", "carol", fmt.Sprint("h", i), at(int64(i))))
	}
	return appendOK(t, s, batch...)[:10]
}

func testMessagesAfter(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ab := history(t, s)
	tests := []struct {
		after, upTo int64
		limit       int
		want        []int64
	}{
		{0, 10, 100, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{3, 10, 100, []int64{4, 5, 6, 7, 8, 9, 10}},
		{3, 7, 100, []int64{4, 5, 6, 7}},
		{3, 10, 2, []int64{4, 5}},
		{0, 100, 100, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{9, 10, 1, []int64{10}},
		{10, 10, 5, nil},
		{5, 3, 5, nil},
		{0, 0, 5, nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("after %d up to %d limit %d", tc.after, tc.upTo, tc.limit), func(t *testing.T) {
			got, err := s.MessagesAfter(t.Context(), "ab", tc.after, tc.upTo, tc.limit)
			must(t, "MessagesAfter", err)
			checkMessages(t, "MessagesAfter", got, pick(ab, tc.want))
		})
	}
	t.Run("unknown conversation", func(t *testing.T) {
		got, err := s.MessagesAfter(t.Context(), "nope", 0, 10, 10)
		if err == nil && len(got) != 0 {
			t.Errorf("MessagesAfter(nope) = %v", seqs(got))
		}
	})
}

func testMessagesBefore(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ab := history(t, s)
	tests := []struct {
		before, from int64
		limit        int
		want         []int64
	}{
		{11, 1, 100, []int64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}},
		{5, 1, 100, []int64{4, 3, 2, 1}},
		{10, 6, 100, []int64{9, 8, 7, 6}},
		{10, 1, 3, []int64{9, 8, 7}},
		{100, 8, 10, []int64{10, 9, 8}},
		{100, 0, 2, []int64{10, 9}},
		{2, 1, 10, []int64{1}},
		{1, 1, 10, nil},
		{5, 7, 10, nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("before %d from %d limit %d", tc.before, tc.from, tc.limit), func(t *testing.T) {
			got, err := s.MessagesBefore(t.Context(), "ab", tc.before, tc.from, tc.limit)
			must(t, "MessagesBefore", err)
			checkMessages(t, "MessagesBefore", got, pick(ab, tc.want))
		})
	}
}

// pick returns the messages with the given seqs from msgs, which holds seqs
// 1..len(msgs) in order.
func pick(msgs []storage.Message, seqs []int64) []storage.Message {
	out := make([]storage.Message, len(seqs))
	for i, seq := range seqs {
		out[i] = msgs[seq-1]
	}
	return out
}
