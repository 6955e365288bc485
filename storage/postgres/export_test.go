package postgres

// SetCopyMin sets the batch size from which s.AppendMessages uses COPY, so
// that tests and benchmarks can exercise and compare both write paths.
func SetCopyMin(s *Store, n int) { s.copyMin = n }
