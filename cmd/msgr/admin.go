package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
)

const adminUsage = `usage: msgr admin [--admin-url URL] [--admin-token-file FILE] <command>

Commands (answers are printed as JSON):
  stats                              broker statistics of the node
  users [--after ID] [-n N]          list users
  user add NAME                      create a user; password from the first line of stdin
  user show|disable|enable|delete NAME
  user passwd NAME                   reset a password; new password from stdin
  devices USER                       list a user's devices
  revoke USER DEVICE                 revoke a device (disconnects it for good)
  convs [--after ID] [-n N]          list conversations
  conv show|members|delete CONV
  clients                            clients connected to the node
  kick CLIENT-ID                     disconnect a client, e.g. alice/phone
  bans                               list bans
  ban user NAME | ip ADDR-OR-CIDR [--reason TEXT] [--for DURATION]
  unban user NAME | ip ADDR-OR-CIDR

The admin URL is the node's HTTP address (MSGR_ADMIN_URL, default
http://127.0.0.1:8080). The token is read from --admin-token-file or
MSGR_ADMIN_TOKEN_FILE, else taken from MSGR_ADMIN_TOKEN.`

// adminClient calls msgrd's admin API.
type adminClient struct {
	base  string
	token string
	http  *http.Client
	out   io.Writer
}

func cmdAdmin(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("admin", e.opts)
	adminURL := fs.String("admin-url", e.getenv("MSGR_ADMIN_URL"), "admin API base URL")
	tokenFile := fs.String("admin-token-file", e.getenv("MSGR_ADMIN_TOKEN_FILE"), "file holding the admin token")
	if err := parse(fs, args, 1, "admin <command>\n\n"+adminUsage); err != nil {
		return err
	}
	if *adminURL == "" {
		*adminURL = "http://127.0.0.1:8080"
	}
	u, err := url.Parse(*adminURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageErrorf("--admin-url %q: want http(s)://host:port", *adminURL)
	}
	token := e.getenv("MSGR_ADMIN_TOKEN")
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("admin token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return usageErrorf("no admin token: set --admin-token-file, MSGR_ADMIN_TOKEN_FILE or MSGR_ADMIN_TOKEN")
	}
	c := &adminClient{base: strings.TrimRight(*adminURL, "/"), token: token, http: &http.Client{Timeout: e.opts.timeout}, out: e.stdout}
	return c.run(ctx, e, fs.Args())
}

func (c *adminClient) run(ctx context.Context, e *env, args []string) error {
	need := func(n int, usage string) error {
		if len(args) != n {
			return usageErrorf("usage: msgr admin %s", usage)
		}
		return nil
	}
	esc := url.PathEscape
	switch args[0] {
	case "stats":
		if err := need(1, "stats"); err != nil {
			return err
		}
		return c.do(ctx, "GET", "/admin/v1/stats", nil)
	case "users", "convs":
		return c.list(ctx, args)
	case "user":
		if len(args) != 3 {
			return usageErrorf("usage: msgr admin user add|show|disable|enable|delete|passwd NAME")
		}
		name := esc(args[2])
		switch args[1] {
		case "add":
			pw, err := e.readPassword()
			if err != nil {
				return err
			}
			return c.do(ctx, "POST", "/admin/v1/users", map[string]string{"id": args[2], "password": pw})
		case "passwd":
			pw, err := e.readPassword()
			if err != nil {
				return err
			}
			return c.do(ctx, "PUT", "/admin/v1/users/"+name+"/password", map[string]string{"password": pw})
		case "show":
			return c.do(ctx, "GET", "/admin/v1/users/"+name, nil)
		case "disable", "enable":
			return c.do(ctx, "POST", "/admin/v1/users/"+name+"/"+args[1], nil)
		case "delete":
			return c.do(ctx, "DELETE", "/admin/v1/users/"+name, nil)
		}
		return usageErrorf("unknown user command %q", args[1])
	case "devices":
		if err := need(2, "devices USER"); err != nil {
			return err
		}
		return c.do(ctx, "GET", "/admin/v1/users/"+esc(args[1])+"/devices", nil)
	case "revoke":
		if err := need(3, "revoke USER DEVICE"); err != nil {
			return err
		}
		return c.do(ctx, "POST", "/admin/v1/users/"+esc(args[1])+"/devices/"+esc(args[2])+"/revoke", nil)
	case "conv":
		if len(args) != 3 {
			return usageErrorf("usage: msgr admin conv show|members|delete CONV")
		}
		conv := "/admin/v1/conversations/" + esc(args[2])
		switch args[1] {
		case "show":
			return c.do(ctx, "GET", conv, nil)
		case "members":
			return c.do(ctx, "GET", conv+"/members", nil)
		case "delete":
			return c.do(ctx, "DELETE", conv, nil)
		}
		return usageErrorf("unknown conv command %q", args[1])
	case "clients":
		if err := need(1, "clients"); err != nil {
			return err
		}
		return c.do(ctx, "GET", "/admin/v1/clients", nil)
	case "kick":
		if err := need(2, "kick CLIENT-ID"); err != nil {
			return err
		}
		// The client id keeps its '/': the route takes the rest of the path.
		return c.do(ctx, "DELETE", "/admin/v1/clients/"+escapeSegments(args[1]), nil)
	case "bans":
		if err := need(1, "bans"); err != nil {
			return err
		}
		return c.do(ctx, "GET", "/admin/v1/bans", nil)
	case "ban":
		fs := newFlagSet("admin ban", e.opts)
		reason := fs.String("reason", "", "why")
		dur := fs.String("for", "", "duration, e.g. 24h (default: permanent)")
		pos, err := parseInterspersed(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 2 || (pos[0] != "user" && pos[0] != "ip") {
			return usageErrorf("usage: msgr admin ban user NAME | ip ADDR [--reason TEXT] [--for DURATION]")
		}
		return c.do(ctx, "POST", "/admin/v1/bans", map[string]string{"kind": pos[0], "value": pos[1], "reason": *reason, "duration": *dur})
	case "unban":
		if err := need(3, "unban user NAME | ip ADDR"); err != nil {
			return err
		}
		if args[1] != "user" && args[1] != "ip" {
			return usageErrorf("usage: msgr admin unban user NAME | ip ADDR")
		}
		return c.do(ctx, "DELETE", "/admin/v1/bans/"+args[1]+"/"+escapeSegments(args[2]), nil)
	case "help":
		fmt.Fprintln(c.out, adminUsage)
		return nil
	}
	return usageErrorf("unknown admin command %q", args[0])
}

// list runs "users" or "convs" with paging flags.
func (c *adminClient) list(ctx context.Context, args []string) error {
	fs := newFlagSet("admin "+args[0], &globals{})
	after := fs.String("after", "", "start after this id")
	n := fs.Int("n", 100, "how many (1-1000)")
	if err := parse(fs, args[1:], 0, "admin "+args[0]+" [--after ID] [-n N]"); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageErrorf("usage: msgr admin %s [--after ID] [-n N]", args[0])
	}
	path := map[string]string{"users": "/admin/v1/users", "convs": "/admin/v1/conversations"}[args[0]]
	q := url.Values{"limit": {strconv.Itoa(*n)}}
	if *after != "" {
		q.Set("after", *after)
	}
	return c.do(ctx, "GET", path+"?"+q.Encode(), nil)
}

// parseInterspersed parses flags placed before, between or after the
// positional arguments, which it returns.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageErrorf("%s: %v", fs.Name(), err)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// escapeSegments escapes each '/'-separated part of s.
func escapeSegments(s string) string {
	parts := strings.Split(s, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// do sends one request and prints the JSON answer; an error answer becomes
// the returned error, with the server's message.
func (c *adminClient) do(ctx context.Context, method, path string, body any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error, Code string }
		if json.Unmarshal(out, &e) == nil && e.Error != "" {
			return fmt.Errorf("admin API: %s (%d %s)", e.Error, resp.StatusCode, e.Code)
		}
		return fmt.Errorf("admin API: %s", resp.Status)
	}
	if resp.StatusCode == http.StatusNoContent || len(out) == 0 {
		fmt.Fprintln(c.out, "ok")
		return nil
	}
	if !json.Valid(out) {
		return errors.New("admin API: answer is not JSON")
	}
	_, err = c.out.Write(out)
	return err
}
