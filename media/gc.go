package media

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/msgrhq/msgr/storage"
	"github.com/msgrhq/msgr/storage/blob"
)

// gcBatch bounds how many media one pass of the collector deletes per query.
const gcBatch = 100

// Run collects garbage every GCInterval until ctx ends.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := s.CollectGarbage(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("media: garbage collection failed", "deleted", n, "error", err)
		} else if n > 0 {
			s.log.Info("media: garbage collected", "deleted", n)
		}
	}
}

// CollectGarbage deletes uploads older than GCAfter that no message
// references, then objects older than GCAfter that have no metadata (left
// by a crash between storing an object and recording it, or by a failed
// delete). It returns how many media and objects it deleted.
func (s *Service) CollectGarbage(ctx context.Context) (int, error) {
	cutoff := s.cfg.Now().Add(-s.cfg.GCAfter)
	deleted := 0
	// Usage counters of days before yesterday can no longer matter.
	if _, err := s.store.PruneMediaUsage(ctx, s.cfg.Now().UTC().AddDate(0, 0, -1)); err != nil {
		return deleted, err
	}
	for {
		batch, err := s.store.UnreferencedMedia(ctx, cutoff, gcBatch)
		if err != nil {
			return deleted, err
		}
		for _, m := range batch {
			if err := s.remove(ctx, m.ID); err != nil {
				return deleted, err
			}
			deleted++
		}
		if len(batch) < gcBatch {
			break
		}
	}
	err := s.blobs.Walk(ctx, func(info blob.Info) error {
		id, ok := strings.CutPrefix(info.Key, s.cfg.KeyPrefix)
		if !ok || !info.Modified.Before(cutoff) {
			return nil
		}
		_, err := s.store.GetMedia(ctx, id)
		if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if err := s.blobs.Delete(ctx, info.Key); err != nil {
			return err
		}
		deleted++
		return nil
	})
	return deleted, err
}
