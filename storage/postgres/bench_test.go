package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/msgrhq/msgr/storage"
	"github.com/msgrhq/msgr/storage/postgres"
	"github.com/msgrhq/msgr/storage/postgres/pgtest"
)

// benchConversations spreads benchmark messages over this many groups, as a
// broker node's batch mixes many conversations.
const benchConversations = 1000

// benchBody is a typical text message body.
var benchBody = []byte(`{"text":"Are we still on for lunch tomorrow? I can book the place near the office.","mentions":[]}`)

// benchMessages returns n messages continuing from *next, round-robin over
// the benchmark conversations, with ever new client message ids.
func benchMessages(n int, next *int) []storage.NewMessage {
	now := time.Now()
	batch := make([]storage.NewMessage, n)
	for i := range batch {
		k := *next
		*next++
		batch[i] = storage.NewMessage{
			ConvID:       fmt.Sprintf("bench-%04d", k%benchConversations),
			ID:           fmt.Sprintf("01JBENCH%018d", k),
			SenderID:     "alice",
			SenderDevice: "phone",
			ClientMsgID:  fmt.Sprintf("cmid-%d", k),
			Kind:         storage.MsgText,
			Body:         benchBody,
			CreatedAt:    now,
		}
	}
	return batch
}

// BenchmarkAppendMessages measures the store path: one AppendMessages call
// (one transaction, one commit) per iteration of size messages, with bodies
// sealed (as msgrd runs) and, for comparison, plaintext.
func BenchmarkAppendMessages(b *testing.B) {
	for _, mode := range []string{"sealed", "plaintext"} {
		b.Run(mode, func(b *testing.B) { benchmarkAppendMessages(b, mode == "sealed") })
	}
}

// BenchmarkAppendWritePath compares AppendMessages' two ways of writing the
// new messages (sealed): INSERT ... SELECT FROM unnest in the final pipeline
// and COPY, one round trip more. defaultCopyMin is where COPY starts to win.
func BenchmarkAppendWritePath(b *testing.B) {
	for _, path := range []struct {
		name    string
		copyMin int
	}{{"insert", 1 << 30}, {"copy", 1}} {
		b.Run(path.name, func(b *testing.B) {
			benchmarkAppend(b, []int{10, 100, 200, 500, 1000}, func(b *testing.B, u string) *postgres.Store {
				s := openStore(b, u)
				postgres.SetCopyMin(s, path.copyMin)
				return s
			})
		})
	}
}

func benchmarkAppendMessages(b *testing.B, sealed bool) {
	benchmarkAppend(b, []int{1, 10, 100, 500}, func(b *testing.B, u string) *postgres.Store {
		if sealed {
			return openStore(b, u)
		}
		s, err := postgres.Open(context.Background(), u)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}

// benchmarkAppend runs one sub-benchmark per batch size against a store
// that open returns for a fresh schema.
func benchmarkAppend(b *testing.B, sizes []int, open func(b *testing.B, databaseURL string) *postgres.Store) {
	for _, size := range sizes {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			u := pgtest.FreshSchema(b)
			s := open(b, u)
			ctx := context.Background()
			for i := range benchConversations {
				setupGroup(b, s, fmt.Sprintf("bench-%04d", i), "alice", "bob")
			}
			next := 0
			n := 0
			for b.Loop() {
				res, err := s.AppendMessages(ctx, benchMessages(size, &next))
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range res {
					if r.Err != nil || r.Duplicate {
						b.Fatalf("append: err %v duplicate %v", r.Err, r.Duplicate)
					}
				}
				n += size
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkCopyBaseline is the ceiling for the store path: the same rows
// written with COPY (one transaction per batch) into an unpartitioned table
// with the same columns and keys, without any membership, duplicate or
// sequence work.
func BenchmarkCopyBaseline(b *testing.B) {
	for _, size := range []int{1, 10, 100, 500} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			u := pgtest.FreshSchema(b)
			conn := connect(b, u)
			ctx := context.Background()
			if _, err := conn.Exec(ctx, `CREATE TABLE copy_scratch (
				conv_id text NOT NULL, seq bigint NOT NULL, id text NOT NULL,
				sender_id text NOT NULL, sender_device text NOT NULL,
				client_msg_id text NOT NULL, kind text NOT NULL,
				body bytea NOT NULL, created_at timestamptz NOT NULL,
				PRIMARY KEY (conv_id, seq),
				UNIQUE (conv_id, sender_id, client_msg_id))`); err != nil {
				b.Fatal(err)
			}
			columns := []string{"conv_id", "seq", "id", "sender_id", "sender_device", "client_msg_id", "kind", "body", "created_at"}
			next := 0
			n := 0
			for b.Loop() {
				batch := benchMessages(size, &next)
				rows := make([][]any, len(batch))
				for i, m := range batch {
					seq := int64(next-size+i)/benchConversations + 1
					rows[i] = []any{m.ConvID, seq, m.ID, m.SenderID, m.SenderDevice, m.ClientMsgID, m.Kind, m.Body, m.CreatedAt}
				}
				if _, err := conn.CopyFrom(ctx, pgx.Identifier{"copy_scratch"}, columns, pgx.CopyFromRows(rows)); err != nil {
					b.Fatal(err)
				}
				n += size
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
