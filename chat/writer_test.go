package chat

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"testing"
	"time"

	"github.com/msgrhq/msgr/storage"
)

// fakeAppender assigns seqs per conversation and records batch sizes; it can
// block a batch until released, to let a queue build up.
type fakeAppender struct {
	mu      sync.Mutex
	seqs    map[string]int64
	batches []int
	fail    error
	entered chan int      // when non-nil, receives each batch's size on entry
	gate    chan struct{} // when non-nil, each batch then waits for a value
}

func (f *fakeAppender) AppendMessages(_ context.Context, batch []storage.NewMessage) ([]storage.AppendResult, error) {
	if f.gate != nil {
		f.entered <- len(batch)
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches = append(f.batches, len(batch))
	if f.fail != nil {
		return nil, f.fail
	}
	out := make([]storage.AppendResult, len(batch))
	for i, m := range batch {
		if m.ConvID == "missing" {
			out[i].Err = storage.ErrNotFound
			continue
		}
		f.seqs[m.ConvID]++
		out[i].Message = storage.Message{ConvID: m.ConvID, Seq: f.seqs[m.ConvID], ClientMsgID: m.ClientMsgID}
	}
	return out, nil
}

func TestWriterGroupCommitsAndKeepsOrder(t *testing.T) {
	store := &fakeAppender{seqs: map[string]int64{}, entered: make(chan int, 2), gate: make(chan struct{})}
	var mu sync.Mutex
	var stored []storage.Message
	w := newWriter(store, 100, func(ms []storage.Message) {
		mu.Lock()
		defer mu.Unlock()
		stored = append(stored, ms...)
	})
	t.Cleanup(w.close)

	// The first message's commit is held; the others queue behind it and
	// must share the next commit.
	const n = 50
	var wg sync.WaitGroup
	results := make([]storage.AppendResult, n)
	errs := make([]error, n)
	wg.Add(1)
	go func() {
		defer wg.Done()
		results[0], errs[0] = w.append(context.Background(), storage.NewMessage{ConvID: "c", ClientMsgID: "0"})
	}()
	if size := <-store.entered; size != 1 {
		t.Fatalf("first batch has %d messages", size)
	}
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = w.append(context.Background(), storage.NewMessage{ConvID: "c", ClientMsgID: fmt.Sprint(i)})
		}()
	}
	waitFor(t, func() bool { w.mu.Lock(); defer w.mu.Unlock(); return len(w.queue) == n-1 })
	store.gate <- struct{}{}
	if size := <-store.entered; size != n-1 {
		t.Fatalf("second batch has %d messages, want %d", size, n-1)
	}
	store.gate <- struct{}{}
	wg.Wait()

	if len(store.batches) != 2 || store.batches[0] != 1 || store.batches[1] != n-1 {
		t.Fatalf("batches %v, want [1 %d]", store.batches, n-1)
	}
	seen := map[int64]bool{}
	for i, r := range results {
		if errs[i] != nil || r.Err != nil || seen[r.Message.Seq] {
			t.Fatalf("message %d: %+v, %v", i, r, errs[i])
		}
		seen[r.Message.Seq] = true
	}
	for i, m := range stored {
		if m.Seq != int64(i+1) {
			t.Fatalf("fan-out order: position %d has seq %d", i, m.Seq)
		}
	}
}

func TestWriterErrors(t *testing.T) {
	boom := errors.New("database on fire")
	tests := []struct {
		name    string
		fail    error
		conv    string
		wantErr error
		wantRes error
	}{
		{"batch fails", boom, "c", boom, nil},
		{"item fails", nil, "missing", nil, storage.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &fakeAppender{seqs: map[string]int64{}, fail: tt.fail}
			fanned := 0
			w := newWriter(store, 10, func(ms []storage.Message) { fanned += len(ms) })
			res, err := w.append(context.Background(), storage.NewMessage{ConvID: tt.conv})
			w.close()
			if !errors.Is(err, tt.wantErr) || !errors.Is(res.Err, tt.wantRes) {
				t.Fatalf("append = %+v, %v; want result error %v, error %v", res, err, tt.wantRes, tt.wantErr)
			}
			if fanned != 0 {
				t.Fatalf("%d failed messages were fanned out", fanned)
			}
		})
	}
}

func TestWriterClosed(t *testing.T) {
	w := newWriter(&fakeAppender{seqs: map[string]int64{}}, 10, func([]storage.Message) {})
	w.close()
	if _, err := w.append(context.Background(), storage.NewMessage{ConvID: "c"}); !errors.Is(err, errClosed) {
		t.Fatalf("append after close: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

// Shards commit different conversations concurrently and keep each
// conversation's messages in order.
func TestWriterShardsOverlapCommitsAndKeepOrder(t *testing.T) {
	store := &fakeAppender{seqs: map[string]int64{}, entered: make(chan int, 64), gate: make(chan struct{})}
	var mu sync.Mutex
	got := map[string][]string{}
	s := newWriterShards(4, store, 100, func(ms []storage.Message) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range ms {
			got[m.ConvID] = append(got[m.ConvID], m.ClientMsgID)
		}
	})
	t.Cleanup(s.close)
	// Find two conversations on different shards.
	convs := []string{"c0"}
	for i := 1; len(convs) < 2; i++ {
		c := fmt.Sprintf("c%d", i)
		if s.shards[maphash.String(s.seed, c)%4] != s.shards[maphash.String(s.seed, convs[0])%4] {
			convs = append(convs, c)
		}
	}
	var wg sync.WaitGroup
	for _, c := range convs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.append(t.Context(), storage.NewMessage{ConvID: c, ClientMsgID: c + "-0"}); err != nil {
				t.Error(err)
			}
		}()
	}
	// Both first commits are in the store at once: neither waits for the other.
	for range convs {
		select {
		case <-store.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("a shard's commit did not start while another's was held")
		}
	}
	close(store.gate)
	wg.Wait()
	// Sequential sends of one conversation stay in order.
	store.gate = nil
	for i := 1; i <= 20; i++ {
		for _, c := range convs {
			if _, err := s.append(t.Context(), storage.NewMessage{ConvID: c, ClientMsgID: fmt.Sprintf("%s-%d", c, i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range convs {
		if len(got[c]) != 21 {
			t.Fatalf("%s: %d messages handed to fan-out", c, len(got[c]))
		}
		for i, id := range got[c] {
			if id != fmt.Sprintf("%s-%d", c, i) {
				t.Fatalf("%s: message %d is %s", c, i, id)
			}
		}
	}
}
