package postgres

import "time"

// SetCopyMin sets the batch size from which s.AppendMessages uses COPY, so
// that tests and benchmarks can exercise and compare both write paths.
func SetCopyMin(s *Store, n int) { s.copyMin = n }

// SetDupProbeWindow sets how long s.AppendMessages reads duplicates up front
// after meeting one; 0 makes every duplicate take the retry.
func SetDupProbeWindow(s *Store, d time.Duration) { s.dupProbeWindow = d }
