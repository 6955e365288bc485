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

// readBufferSize is each connection's read buffer (mochi's default is
// 2 KiB). Chat commands and acknowledgements are far smaller, and beyond
// what is buffered a larger packet is read straight into its own buffer
// whatever this is, so 512 bytes costs few extra system calls and saves
// 1.5 KiB per connection, idle ones included (docs/BENCHMARKS.md, P3).
const readBufferSize = 512
