package chat

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage"
)

const (
	// typingInterval is how often a user may signal typing in one conversation.
	typingInterval = 2 * time.Second
	// typingTTL is how long receivers show the indicator unless repeated.
	typingTTL = 5 * time.Second
)

// Typing tells the other active members of conv that the user is typing.
// Nothing is stored; the signal goes out at QoS 0.
func (s *Service) Typing(ctx context.Context, dev Device, convID string) error {
	if !validConvID(convID) {
		return protocol.Errorf(protocol.CodeBadRequest, "conv: invalid conversation id")
	}
	if !s.typing.allow(dev.User + "\x00" + convID) {
		return protocol.Errorf(protocol.CodeRateLimited, "typing: at most one signal per %v per conversation", typingInterval)
	}
	if _, err := s.activeMemberOf(ctx, convID, dev.User); err != nil {
		return err
	}
	members, err := s.fanout.activeMembers(convID)
	if err != nil {
		return s.storeError("typing", err)
	}
	payload, err := json.Marshal(protocol.Event{V: protocol.Version, Type: protocol.EvTyping,
		Typing: &protocol.Typing{Conv: convID, User: dev.User, TTL: typingTTL.Milliseconds()}})
	if err != nil {
		return s.storeError("typing", err)
	}
	for _, m := range members {
		if m.id == dev.User {
			continue
		}
		if err := s.pub.Notify(protocol.InboxTopic(m.id), payload); err != nil {
			s.log.Warn("typing: publish", "user", m.id, "error", err)
		}
	}
	return nil
}

// maxRateKeys forces an early sweep so that a burst of distinct keys cannot
// grow the limiter's map for a whole minute.
const maxRateKeys = 100_000

// rateLimiter allows one event per key per interval.
type rateLimiter struct {
	interval time.Duration
	now      func() time.Time

	mu    sync.Mutex
	last  map[string]time.Time
	swept time.Time
}

func newRateLimiter(interval time.Duration, now func() time.Time) *rateLimiter {
	return &rateLimiter{interval: interval, now: now, last: make(map[string]time.Time)}
}

func (r *rateLimiter) allow(key string) bool {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.swept) > time.Minute || len(r.last) >= maxRateKeys {
		// Forget idle keys so the map does not grow with every
		// conversation ever typed in.
		for k, t := range r.last {
			if now.Sub(t) >= r.interval {
				delete(r.last, k)
			}
		}
		r.swept = now
	}
	if t, ok := r.last[key]; ok && now.Sub(t) < r.interval {
		return false
	}
	r.last[key] = now
	return true
}

// Settings applies the changes in req (absent fields stay) and returns the
// user's settings.
func (s *Service) Settings(ctx context.Context, dev Device, presence string, readReceipts *bool) (protocol.Settings, error) {
	u, err := s.store.GetUser(ctx, dev.User)
	if err != nil {
		return protocol.Settings{}, s.storeError("settings", err)
	}
	set := u.Settings
	changed := false
	if presence != "" {
		v := storage.Visibility(presence)
		if v != storage.VisibleEveryone && v != storage.VisibleContacts && v != storage.VisibleNobody {
			return protocol.Settings{}, protocol.Errorf(protocol.CodeBadRequest, "presence must be everyone, contacts or nobody")
		}
		set.Presence, changed = v, true
	}
	if readReceipts != nil {
		set.ReadReceipts, changed = *readReceipts, true
	}
	if changed {
		if err := s.store.SetSettings(ctx, dev.User, set); err != nil {
			return protocol.Settings{}, s.storeError("settings", err)
		}
		s.settings.invalidate(dev.User)
	}
	return protocol.Settings{Presence: string(set.Presence), ReadReceipts: set.ReadReceipts}, nil
}
