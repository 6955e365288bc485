// Command msgrd is the msgr broker daemon.
//
//	msgrd [flags]                 run the broker
//	msgrd user add NAME [flags]   create a user; the password is read from stdin
//	msgrd user passwd NAME        set a user's password, read from stdin
//	msgrd keys ...                master key management: generate, id, rotate, shred
//	msgrd dev-certs DIR [HOST...] write a development CA, server and client certificate
//
// Every flag has an MSGR_* environment variable; run msgrd -h for the list.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/msgrhq/msgr/auth"
	"github.com/msgrhq/msgr/broker"
	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "msgrd:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "user" {
		return userCommand(ctx, args[1:], stdin, stdout, stderr)
	}
	if len(args) > 0 && args[0] == "keys" {
		return keysCommand(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "dev-certs" {
		return devCertsCommand(args[1:], stdout)
	}
	cfg := broker.DefaultConfig()
	fs := flag.NewFlagSet("msgrd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := cfg.Parse(fs, args, os.LookupEnv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (commands: user add, user passwd, keys, dev-certs)", fs.Arg(0))
	}
	return serve(ctx, cfg, stderr)
}

func serve(ctx context.Context, cfg broker.Config, logOut io.Writer) error {
	log := cfg.NewLogger(logOut)
	store, err := broker.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	b, err := broker.New(cfg, store, log)
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return b.Close(shutdownCtx)
}

func userCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	usage := errors.New("usage: msgrd user add|passwd NAME [store flags] (password on stdin)")
	if len(args) < 2 {
		return usage
	}
	verb, name := args[0], args[1]
	if verb != "add" && verb != "passwd" {
		return usage
	}
	if !protocol.ValidID(name) {
		return fmt.Errorf("invalid user name %q: 1-%d characters of a-z 0-9 . _ -, starting with a letter or digit", name, protocol.MaxIDLen)
	}
	cfg := broker.DefaultConfig()
	fs := flag.NewFlagSet("msgrd user", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := cfg.Parse(fs, args[2:], os.LookupEnv); err != nil {
		return err
	}
	password, err := readPassword(stdin)
	if err != nil {
		return err
	}
	hash, err := auth.NewHasher(auth.DefaultParams, 1).Hash(ctx, password)
	if err != nil {
		return err
	}
	store, err := broker.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	if verb == "passwd" {
		if err := store.SetPassword(ctx, name, hash); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("user %s does not exist", name)
			}
			return err
		}
		// As the admin API's reset: access tokens issued before are
		// refused from now on (SetPassword raised the generation), refresh
		// tokens are void. Connected devices stay until they reconnect.
		if err := store.ClearRefreshTokens(ctx, name); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "password of %s changed\n", name)
		return nil
	}
	err = store.CreateUser(ctx, storage.User{ID: name, PasswordHash: hash, CreatedAt: time.Now()})
	if errors.Is(err, storage.ErrExists) {
		return fmt.Errorf("user %s already exists", name)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "user %s created\n", name)
	return nil
}

// readPassword reads the first line of r.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		return "", errors.New("no password on stdin (pipe it in: echo secret | msgrd user add NAME)")
	}
	return password, nil
}
