package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/keyring"
	"github.com/msgrhq/msgr/storage"
)

const keysUsage = `usage:
  msgrd keys generate FILE                      write a new master key file (0600)
  msgrd keys id [store flags]                   print the id of the configured master key
  msgrd keys rotate --new-master-key-file FILE [store flags]
                                                rewrap every data key under the new master key
  msgrd keys shred CONVERSATION [store flags]   delete a conversation's data keys: its stored
                                                messages become unreadable for good`

// keysCommand runs "msgrd keys ...": master key management.
func keysCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(keysUsage)
	}
	switch verb, rest := args[0], args[1:]; verb {
	case "generate":
		if len(rest) != 1 {
			return errors.New(keysUsage)
		}
		key, created, err := keyring.LoadOrCreateFile(rest[0])
		if err != nil {
			return err
		}
		if !created {
			return fmt.Errorf("%s already exists (key id %s); not overwritten", rest[0], keyring.KeyID(key))
		}
		fmt.Fprintf(stdout, "master key %s written to %s; keep a backup: without it the messages cannot be read\n", keyring.KeyID(key), rest[0])
		return nil
	case "id":
		cfg, _, err := keysConfig(rest, stderr, nil)
		if err != nil {
			return err
		}
		ring, _, err := broker.LoadKeyring(cfg)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, ring.ID())
		return nil
	case "rotate":
		var newKeyFile string
		cfg, _, err := keysConfig(rest, stderr, func(fs *flag.FlagSet) {
			fs.StringVar(&newKeyFile, "new-master-key-file", os.Getenv("MSGR_NEW_MASTER_KEY_FILE"), "the new master key (MSGR_NEW_MASTER_KEY_FILE)")
		})
		if err != nil {
			return err
		}
		if newKeyFile == "" {
			return errors.New("keys rotate: --new-master-key-file is required (create one with: msgrd keys generate FILE)")
		}
		return rotate(ctx, cfg, newKeyFile, stdout)
	case "shred":
		if len(rest) < 1 {
			return errors.New(keysUsage)
		}
		convID := rest[0]
		cfg, _, err := keysConfig(rest[1:], stderr, nil)
		if err != nil {
			return err
		}
		store, err := broker.OpenStore(ctx, cfg)
		if err != nil {
			return err
		}
		defer store.Close()
		n, err := store.ShredConversation(ctx, convID)
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("conversation %s does not exist", convID)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "shredded conversation %s: %d data key(s) deleted; its stored messages can no longer be read\n", convID, n)
		return nil
	}
	return errors.New(keysUsage)
}

// keysConfig parses the store flags of a keys subcommand; extra adds more.
func keysConfig(args []string, stderr io.Writer, extra func(*flag.FlagSet)) (broker.Config, *flag.FlagSet, error) {
	cfg := broker.DefaultConfig()
	fs := flag.NewFlagSet("msgrd keys", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if extra != nil {
		extra(fs)
	}
	if err := cfg.Parse(fs, args, os.LookupEnv); err != nil {
		return cfg, fs, err
	}
	if fs.NArg() > 0 {
		return cfg, fs, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return cfg, fs, nil
}

// rotate rewraps every data key under the master key in newKeyFile. The
// configured keys stay in the keyring to unwrap; only the new one wraps.
func rotate(ctx context.Context, cfg broker.Config, newKeyFile string, stdout io.Writer) error {
	current, previous, _, err := broker.MasterKeys(cfg)
	if err != nil {
		return err
	}
	newKey, err := keyring.LoadFile(newKeyFile)
	if err != nil {
		return fmt.Errorf("new-master-key-file: %w", err)
	}
	ring, err := keyring.New(newKey, append([][]byte{current}, previous...)...)
	if err != nil {
		return err
	}
	store, err := broker.OpenStoreKeyring(ctx, cfg, ring, cfg.NewLogger(os.Stderr))
	if err != nil {
		return err
	}
	defer store.Close()
	n, err := store.RewrapDataKeys(ctx)
	if err != nil {
		return fmt.Errorf("rotate (%d data keys rewrapped so far; run it again to resume): %w", n, err)
	}
	fmt.Fprintf(stdout, "rewrapped %d data key(s) from master key %s to %s; from now on start msgrd with the new key (--master-key-file %s)\n",
		n, keyring.KeyID(current), ring.ID(), newKeyFile)
	return nil
}
