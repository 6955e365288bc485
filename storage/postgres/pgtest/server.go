package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// commandTimeout bounds one initdb or pg_ctl run.
const commandTimeout = 90 * time.Second

// Server is a private PostgreSQL server for one test, set up like the
// shared one in scripts/lib/postgres.sh: it runs as the postgres user when
// the test runs as root (PostgreSQL refuses root), listens only on
// 127.0.0.1 on a random port, keeps its unix socket in its own directory and
// has fsync and synchronous_commit on. Unlike the shared server it may be
// crashed (Crash) and started again (Start) on the same data and port.
type Server struct {
	bin     string // directory of initdb, pg_ctl, postgres
	dir     string // owns data/, server.log and the unix socket
	port    int
	runAs   *user.User // nil: run as ourselves
	running bool
}

// StartServer initialises a new cluster in a temporary directory and starts
// it; it is stopped and removed when the test ends. It skips the test when
// the PostgreSQL server binaries are not installed (scripts/test.sh
// installs them).
func StartServer(tb testing.TB) *Server {
	tb.Helper()
	bin, err := binDir()
	if err != nil {
		tb.Skipf("pgtest: %v; install them (Debian: apt-get install postgresql) or run ./scripts/test.sh, which does", err)
	}
	s := &Server{bin: bin}
	if os.Geteuid() == 0 {
		if s.runAs, err = user.Lookup("postgres"); err != nil {
			tb.Fatalf("pgtest: running as root needs a postgres user to run the server as: %v", err)
		}
	}
	// Not t.TempDir: its parent directory is private to root, and the
	// postgres user must be able to reach the data directory.
	s.dir, err = os.MkdirTemp("", "msgr-pgtest-")
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() {
		if s.running {
			// A fast shutdown: the test is over, its data is not needed.
			if err := s.pgCtl("-m", "fast", "stop"); err != nil {
				tb.Errorf("pgtest: stop server: %v", err)
			}
		}
		if err := os.RemoveAll(s.dir); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})
	if s.runAs != nil {
		uid, _ := strconv.Atoi(s.runAs.Uid)
		gid, _ := strconv.Atoi(s.runAs.Gid)
		if err := os.Chown(s.dir, uid, gid); err != nil {
			tb.Fatalf("pgtest: %v", err)
		}
	}
	// --no-sync only skips flushing the freshly created files; the server
	// itself runs with fsync on.
	if out, err := s.run("initdb", "-D", s.dataDir(), "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync"); err != nil {
		tb.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}

	// Another process can take the port between our check and the
	// server's bind, so try a few.
	for attempt := 1; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			tb.Fatalf("pgtest: %v", err)
		}
		err = s.start()
		if err == nil {
			return s
		}
		if attempt == 5 {
			tb.Fatalf("pgtest: start server: %v\n%s", err, s.log())
		}
	}
}

// URL is the server's postgres database; the server trusts local
// connections, so it needs no password.
func (s *Server) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// Addr is the server's host:port.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Crash stops the server the way a crash would: pg_ctl's immediate mode
// kills every server process without a checkpoint, open connections break,
// and the next start runs crash recovery from the write-ahead log.
func (s *Server) Crash(tb testing.TB) {
	tb.Helper()
	if err := s.pgCtl("-m", "immediate", "stop"); err != nil {
		tb.Fatalf("pgtest: crash server: %v\n%s", err, s.log())
	}
	s.running = false
}

// Start starts the server again on the same data directory and port.
func (s *Server) Start(tb testing.TB) {
	tb.Helper()
	if err := s.start(); err != nil {
		tb.Fatalf("pgtest: restart server on port %d: %v\n%s", s.port, err, s.log())
	}
}

func (s *Server) start() error {
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=on -c synchronous_commit=on -c max_connections=100",
		s.port, s.dir)
	if err := s.pgCtl("-l", s.logFile(), "-t", "60", "-o", opts, "start"); err != nil {
		return err
	}
	s.running = true
	return nil
}

// pgCtl runs pg_ctl on the data directory and waits for it to finish (-w).
func (s *Server) pgCtl(args ...string) error {
	out, err := s.run("pg_ctl", append([]string{"-D", s.dataDir(), "-w"}, args...)...)
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// run runs a server program as the server's user, from its directory so
// that the postgres user can always read its working directory.
func (s *Server) run(program string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	name, argv := filepath.Join(s.bin, program), args
	if s.runAs != nil {
		name, argv = "runuser", append([]string{"-u", s.runAs.Username, "--", name}, args...)
	}
	cmd := exec.CommandContext(ctx, name, argv...)
	cmd.Dir = s.dir
	// pg_ctl redirects the server's output to the log file, so the server
	// does not hold our pipes open; WaitDelay guards against it anyway.
	cmd.WaitDelay = 5 * time.Second
	return cmd.CombinedOutput()
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }
func (s *Server) logFile() string { return filepath.Join(s.dir, "server.log") }

// log returns the server log for failure messages.
func (s *Server) log() string {
	b, err := os.ReadFile(s.logFile())
	if err != nil {
		return fmt.Sprintf("(no server log: %v)", err)
	}
	return string(b)
}

// binDir finds the newest /usr/lib/postgresql/VERSION/bin holding initdb,
// or the directory of initdb on PATH.
func binDir() (string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) > 0 {
		version := func(path string) int {
			v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
			return v
		}
		newest := slices.MaxFunc(matches, func(a, b string) int { return version(a) - version(b) })
		return filepath.Dir(newest), nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb, no initdb on PATH)")
}

// freePort returns a port nothing listens on at the moment.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
