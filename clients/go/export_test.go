package msgr

import "time"

// SetRefreshBefore makes s refresh when its token expires within d.
func SetRefreshBefore(s *TokenSession, d time.Duration) {
	s.mu.Lock()
	s.refreshBefore = d
	s.mu.Unlock()
}
