package broker

// postgresWriters is how many group-committing writers share the
// conversations on PostgreSQL: commits overlap (docs/BENCHMARKS.md), and
// the store's pool (storage/postgres, 16 connections unless the URL says
// otherwise) leaves room for everything else. The embedded store has one
// write connection, where more writers would only split batches into more
// fsyncs.
const postgresWriters = 4

func storeWriters(cfg Config) int {
	if cfg.DatabaseURL != "" {
		return postgresWriters
	}
	return 1
}
