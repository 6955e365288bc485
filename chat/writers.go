package chat

import (
	"context"
	"hash/maphash"

	"github.com/msgrhq/msgr/storage"
)

// writerShards spreads conversations over several group-committing
// writers, each with its own transactions, so that commits overlap: with
// a networked database a commit is mostly waiting (round trips, the WAL
// flush), and one writer leaves the database idle while the broker waits.
// A conversation always goes to the same writer, so its messages are
// stored and handed to fan-out in seq order. One shard is the plain
// writer (the right choice for an embedded store with a single write
// connection, where more shards only mean more fsyncs).
type writerShards struct {
	seed   maphash.Seed
	shards []*writer
}

func newWriterShards(n int, store appender, maxBatch int, onStored func([]storage.Message)) *writerShards {
	s := &writerShards{seed: maphash.MakeSeed(), shards: make([]*writer, max(n, 1))}
	for i := range s.shards {
		s.shards[i] = newWriter(store, maxBatch, onStored)
	}
	return s
}

func (s *writerShards) append(ctx context.Context, m storage.NewMessage) (storage.AppendResult, error) {
	w := s.shards[0]
	if len(s.shards) > 1 {
		w = s.shards[maphash.String(s.seed, m.ConvID)%uint64(len(s.shards))]
	}
	return w.append(ctx, m)
}

// close stops every shard, waiting for what each has queued.
func (s *writerShards) close() {
	for _, w := range s.shards {
		w.close()
	}
}
