package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/msgrhq/msgr/auth"
	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/storage"
)

// usersCommand creates PREFIXa0.., PREFIXb0.. style benchmark users in a
// store directly, all with the same password hash (hashing once instead of
// once per user: argon2 is deliberately slow). Existing users are kept.
func usersCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := broker.DefaultConfig()
	fs := flag.NewFlagSet("msgrbench users", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "embedded store directory (when no -database-url)")
	fs.StringVar(&cfg.DatabaseURL, "database-url", "", "PostgreSQL URL")
	fs.StringVar(&cfg.MasterKeyFile, "master-key-file", "", "the msgrd master key file (required with -database-url)")
	names := fs.String("names", "", "comma-separated name patterns PREFIX%d, e.g. 'bencha%d,benchb%d'")
	n := fs.Int("n", 100, "users per pattern")
	password := fs.String("password", "bench-password", "password of every user")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *names == "" {
		return errors.New("-names is required")
	}
	hash, err := auth.NewHasher(auth.DefaultParams, 1).Hash(ctx, *password)
	if err != nil {
		return err
	}
	store, err := broker.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	created := 0
	for _, pattern := range splitList(*names) {
		for i := range *n {
			id := fmt.Sprintf(pattern, i)
			err := store.CreateUser(ctx, storage.User{ID: id, PasswordHash: hash, CreatedAt: time.Now()})
			switch {
			case errors.Is(err, storage.ErrExists):
			case err != nil:
				return fmt.Errorf("create %s: %w", id, err)
			default:
				created++
			}
		}
	}
	fmt.Fprintf(stdout, "%d users created\n", created)
	return nil
}
