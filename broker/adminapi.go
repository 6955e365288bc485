package broker

import (
	"context"
	_ "embed"
	"errors"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	msgrauth "github.com/msgrhq/msgr/auth"
	authhook "github.com/msgrhq/msgr/hooks/auth"
	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage"
)

// openAPI is the admin API's OpenAPI 3 document (docs/openapi.json links
// here). TestAdminRoutesMatchOpenAPI keeps it and adminRouteTable in step.
//
//go:embed openapi.json
var openAPI []byte

// adminRoute is one endpoint of the admin API.
type adminRoute struct {
	method, path string // path as in the OpenAPI document; {x...} matches the rest
	handler      func(b *Broker, w http.ResponseWriter, r *http.Request)
}

// adminRouteTable is every admin endpoint; adminRoutes registers exactly these.
var adminRouteTable = []adminRoute{
	{"GET", "/admin/v1/openapi.json", (*Broker).adminOpenAPI},
	{"GET", "/admin/v1/stats", (*Broker).adminStats},
	{"GET", "/admin/v1/users", (*Broker).adminListUsers},
	{"POST", "/admin/v1/users", (*Broker).adminCreateUser},
	{"GET", "/admin/v1/users/{user}", (*Broker).adminGetUser},
	{"DELETE", "/admin/v1/users/{user}", (*Broker).adminDeleteUser},
	{"POST", "/admin/v1/users/{user}/disable", (*Broker).adminDisableUser},
	{"POST", "/admin/v1/users/{user}/enable", (*Broker).adminEnableUser},
	{"PUT", "/admin/v1/users/{user}/password", (*Broker).adminSetPassword},
	{"GET", "/admin/v1/users/{user}/devices", (*Broker).adminListDevices},
	{"POST", "/admin/v1/users/{user}/devices/{device}/revoke", (*Broker).adminRevokeDevice},
	{"GET", "/admin/v1/conversations", (*Broker).adminListConversations},
	{"GET", "/admin/v1/conversations/{conv}", (*Broker).adminGetConversation},
	{"DELETE", "/admin/v1/conversations/{conv}", (*Broker).adminDeleteConversation},
	{"GET", "/admin/v1/conversations/{conv}/members", (*Broker).adminMembers},
	{"GET", "/admin/v1/clients", (*Broker).adminListClients},
	{"DELETE", "/admin/v1/clients/{client...}", (*Broker).adminKickClient},
	{"GET", "/admin/v1/bans", (*Broker).adminListBans},
	{"POST", "/admin/v1/bans", (*Broker).adminAddBan},
	{"DELETE", "/admin/v1/bans/{kind}/{value...}", (*Broker).adminRemoveBan},
}

// adminRoutes registers the admin API. Without an admin token every admin
// path answers 404 with an explanation: there is no way in.
func (b *Broker) adminRoutes(mux *http.ServeMux) {
	if !b.sec.adminOn {
		mux.HandleFunc("/admin/", func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, http.StatusNotFound, "admin_disabled", "the admin API is disabled: start msgrd with --admin-token-file")
		})
		return
	}
	// known holds the admin routes alone, to tell a wrong method (405)
	// from an unknown path (404) in the catch-all below.
	known := http.NewServeMux()
	for _, rt := range adminRouteTable {
		h := rt.handler
		pattern := rt.method + " " + rt.path
		handler := func(w http.ResponseWriter, r *http.Request) {
			if !b.adminAuthorized(w, r) {
				return
			}
			h(b, w, r)
		}
		mux.HandleFunc(pattern, handler)
		known.HandleFunc(pattern, handler)
	}
	mux.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		if !b.adminAuthorized(w, r) {
			return
		}
		var allowed []string
		for _, m := range []string{"GET", "POST", "PUT", "DELETE"} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := known.Handler(probe); pattern != "" {
				allowed = append(allowed, m)
			}
		}
		if len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" "+r.URL.Path+": allowed "+strings.Join(allowed, ", "))
			return
		}
		writeError(w, http.StatusNotFound, "not_found", "no admin endpoint "+r.Method+" "+r.URL.Path+" (see /admin/v1/openapi.json)")
	})
}

// adminAuthorized accepts only "Authorization: Bearer <admin token>". User
// passwords and access tokens are never admin credentials.
func (b *Broker) adminAuthorized(w http.ResponseWriter, r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !b.sec.isAdmin(tok) {
		b.log.Info("admin API: refused", "remote", r.RemoteAddr, "path", r.URL.Path)
		w.Header().Set("WWW-Authenticate", `Bearer realm="msgr-admin"`)
		writeError(w, http.StatusUnauthorized, "unauthenticated", "admin token required: Authorization: Bearer <admin token>")
		return false
	}
	return true
}

func (b *Broker) adminOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPI)
}

// storeError answers a store failure: sentinel errors become 404/409, the
// rest 503 (logged, not shown).
func (b *Broker) storeError(w http.ResponseWriter, what string, err error) {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", what+": not found")
	case errors.Is(err, storage.ErrExists):
		writeError(w, http.StatusConflict, "exists", what+": already exists")
	case errors.Is(err, errBadBan):
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
	default:
		b.log.Error("admin API: store", "what", what, "error", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", what+": store unavailable")
	}
}

// page reads ?after=&limit= (limit 1..1000, default 100).
func page(w http.ResponseWriter, r *http.Request) (string, int, bool) {
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "bad_request", "limit must be 1..1000")
			return "", 0, false
		}
		limit = n
	}
	return r.URL.Query().Get("after"), limit, true
}

// --- stats ---

// StatsJSON is GET /admin/v1/stats.
type StatsJSON struct {
	Node             string    `json:"node"`
	Started          time.Time `json:"started"`
	UptimeSeconds    int64     `json:"uptime_seconds"`
	ClientsConnected int64     `json:"clients_connected"`
	ClientsTotal     int64     `json:"clients_total"` // sessions known, connected or not
	MessagesReceived int64     `json:"messages_received"`
	MessagesSent     int64     `json:"messages_sent"`
	PacketsReceived  int64     `json:"packets_received"`
	PacketsSent      int64     `json:"packets_sent"`
	BytesReceived    int64     `json:"bytes_received"`
	BytesSent        int64     `json:"bytes_sent"`
	Goroutines       int       `json:"goroutines"`
	Store            StoreJSON `json:"store"`
	TokensEnabled    bool      `json:"tokens_enabled"`
	TokenAlg         string    `json:"token_alg,omitempty"`
}

// StoreJSON describes the store in the stats.
type StoreJSON struct {
	Kind      string  `json:"kind"` // sqlite or postgres
	OK        bool    `json:"ok"`
	PingMilli float64 `json:"ping_ms"`
	Error     string  `json:"error,omitempty"`
}

func (b *Broker) adminStats(w http.ResponseWriter, r *http.Request) {
	info := b.mqtt.Info.Clone()
	st := StatsJSON{
		Node: b.cfg.Security.NodeID, Started: b.sec.started.UTC(),
		UptimeSeconds:    int64(time.Since(b.sec.started) / time.Second),
		ClientsConnected: info.ClientsConnected, ClientsTotal: info.ClientsTotal,
		MessagesReceived: info.MessagesReceived, MessagesSent: info.MessagesSent,
		PacketsReceived: info.PacketsReceived, PacketsSent: info.PacketsSent,
		BytesReceived: info.BytesReceived, BytesSent: info.BytesSent,
		Goroutines: runtime.NumGoroutine(), TokensEnabled: b.sec.tokens != nil,
	}
	if b.sec.tokens != nil {
		st.TokenAlg = b.sec.tokens.Alg()
	}
	st.Store.Kind = "sqlite"
	if b.cfg.DatabaseURL != "" {
		st.Store.Kind = "postgres"
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	t0 := time.Now()
	if err := b.store.Ping(ctx); err != nil {
		st.Store.Error = "store unavailable"
		b.log.Warn("admin stats: store ping", "error", err)
	} else {
		st.Store.OK = true
	}
	st.Store.PingMilli = float64(time.Since(t0).Microseconds()) / 1000
	writeJSON(w, http.StatusOK, st)
}

// --- users ---

// UserJSON is a user in the admin API. The password hash is never shown.
type UserJSON struct {
	ID         string    `json:"id"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeen   time.Time `json:"last_seen,omitzero"`
	Disabled   bool      `json:"disabled"`
	DisabledAt time.Time `json:"disabled_at,omitzero"`
	Deleted    bool      `json:"deleted"`
	DeletedAt  time.Time `json:"deleted_at,omitzero"`
	Presence   string    `json:"presence"`
	Receipts   bool      `json:"read_receipts"`
	Connected  int       `json:"connected_devices"` // on this node
}

// connectedDevices counts each user's clients connected to this node, in
// one pass over mochi's clients however many users a page shows.
func (b *Broker) connectedDevices() map[string]int {
	n := map[string]int{}
	for _, cl := range b.mqtt.Clients.GetAll() {
		if user, _, ok := authhook.Identity(cl); ok && !cl.Closed() {
			n[user]++
		}
	}
	return n
}

func (b *Broker) userJSON(u storage.User, connected map[string]int) UserJSON {
	return UserJSON{
		ID: u.ID, CreatedAt: u.CreatedAt, LastSeen: u.LastSeen,
		Disabled: !u.DisabledAt.IsZero(), DisabledAt: u.DisabledAt,
		Deleted: !u.DeletedAt.IsZero(), DeletedAt: u.DeletedAt,
		Presence: string(u.Settings.Presence), Receipts: u.Settings.ReadReceipts, Connected: connected[u.ID],
	}
}

func (b *Broker) adminListUsers(w http.ResponseWriter, r *http.Request) {
	after, limit, ok := page(w, r)
	if !ok {
		return
	}
	users, err := b.store.ListUsers(r.Context(), after, limit)
	if err != nil {
		b.storeError(w, "users", err)
		return
	}
	out := make([]UserJSON, 0, len(users))
	connected := b.connectedDevices()
	for _, u := range users {
		out = append(out, b.userJSON(u, connected))
	}
	resp := map[string]any{"users": out}
	if len(users) == limit {
		resp["next"] = users[len(users)-1].ID
	}
	writeJSON(w, http.StatusOK, resp)
}

// CreateUserRequest is the body of POST /admin/v1/users.
type CreateUserRequest struct {
	ID       string `json:"id"`
	Password string `json:"password"`
}

func (b *Broker) adminCreateUser(w http.ResponseWriter, r *http.Request) {
	var req CreateUserRequest
	if !readJSON(w, r, &req) {
		return
	}
	if !protocol.ValidID(req.ID) {
		writeError(w, http.StatusBadRequest, "bad_request", "id must be 1-64 characters of a-z 0-9 . _ -, starting with a letter or digit")
		return
	}
	if req.Password == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "password is required")
		return
	}
	hash, err := b.sec.auth.Passwords.Hash(r.Context(), req.Password)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "cannot hash the password")
		return
	}
	u := storage.User{ID: req.ID, PasswordHash: hash, CreatedAt: time.Now()}
	if err := b.store.CreateUser(r.Context(), u); err != nil {
		b.storeError(w, "user "+req.ID, err)
		return
	}
	u, err = b.store.GetUser(r.Context(), req.ID)
	if err != nil {
		b.storeError(w, "user "+req.ID, err)
		return
	}
	b.log.Info("admin API: user created", "user", req.ID)
	writeJSON(w, http.StatusCreated, b.userJSON(u, nil))
}

func (b *Broker) adminGetUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("user")
	u, err := b.store.GetUser(r.Context(), id)
	if err != nil {
		b.storeError(w, "user "+id, err)
		return
	}
	writeJSON(w, http.StatusOK, b.userJSON(u, b.connectedDevices()))
}

// answerUser answers with the user's current state after a change.
func (b *Broker) answerUser(w http.ResponseWriter, r *http.Request, id string, err error) {
	if err != nil {
		b.storeError(w, "user "+id, err)
		return
	}
	b.adminGetUser(w, r)
}

func (b *Broker) adminDeleteUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("user")
	b.answerUser(w, r, id, b.DeleteUser(r.Context(), id))
}

func (b *Broker) adminDisableUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("user")
	b.answerUser(w, r, id, b.SetUserDisabled(r.Context(), id, true))
}

func (b *Broker) adminEnableUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("user")
	b.answerUser(w, r, id, b.SetUserDisabled(r.Context(), id, false))
}

// PasswordRequest is the body of PUT /admin/v1/users/{user}/password.
type PasswordRequest struct {
	Password string `json:"password"`
}

func (b *Broker) adminSetPassword(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("user")
	var req PasswordRequest
	if !readJSON(w, r, &req) {
		return
	}
	if req.Password == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "password is required")
		return
	}
	u, err := b.store.GetUser(r.Context(), id)
	if err == nil && !u.DeletedAt.IsZero() {
		err = storage.ErrNotFound // a tombstone gets no password
	}
	if err != nil {
		b.storeError(w, "user "+id, err)
		return
	}
	hash, err := b.sec.auth.Passwords.Hash(r.Context(), req.Password)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "cannot hash the password")
		return
	}
	if err := b.store.SetPassword(r.Context(), id, hash); err != nil {
		b.storeError(w, "user "+id, err)
		return
	}
	// Whoever had the old password may hold tokens and connections: the
	// new password raised the user's token generation, which refuses the
	// access tokens issued before; void the refresh tokens and disconnect
	// the user everywhere, so that every device authenticates again.
	if err := b.store.ClearRefreshTokens(r.Context(), id); err != nil {
		b.storeError(w, "refresh tokens of "+id, err)
		return
	}
	n := b.kick(kickUser+id, packets.ErrAdministrativeAction)
	b.log.Info("admin API: password reset", "user", id, "disconnected_here", n)
	b.adminGetUser(w, r)
}

func (b *Broker) adminListDevices(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("user")
	if _, err := b.store.GetUser(r.Context(), id); err != nil {
		b.storeError(w, "user "+id, err)
		return
	}
	devs, err := b.devicesJSON(r.Context(), id, "")
	if err != nil {
		b.storeError(w, "devices of "+id, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": devs})
}

func (b *Broker) adminRevokeDevice(w http.ResponseWriter, r *http.Request) {
	b.revokeDeviceHTTP(w, r, r.PathValue("user"), r.PathValue("device"))
}

// --- conversations ---

// ConversationJSON is a conversation in the admin API (never its messages).
type ConversationJSON struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Title     string    `json:"title,omitempty"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	LastSeq   int64     `json:"last_seq"`
}

func convJSON(c storage.Conversation) ConversationJSON {
	return ConversationJSON{ID: c.ID, Kind: string(c.Kind), Title: c.Title, CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt, LastSeq: c.LastSeq}
}

func (b *Broker) adminListConversations(w http.ResponseWriter, r *http.Request) {
	after, limit, ok := page(w, r)
	if !ok {
		return
	}
	convs, err := b.store.ListConversations(r.Context(), after, limit)
	if err != nil {
		b.storeError(w, "conversations", err)
		return
	}
	out := make([]ConversationJSON, 0, len(convs))
	for _, c := range convs {
		out = append(out, convJSON(c))
	}
	resp := map[string]any{"conversations": out}
	if len(convs) == limit {
		resp["next"] = convs[len(convs)-1].ID
	}
	writeJSON(w, http.StatusOK, resp)
}

func (b *Broker) adminGetConversation(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("conv")
	c, err := b.store.GetConversation(r.Context(), id)
	if err != nil {
		b.storeError(w, "conversation "+id, err)
		return
	}
	writeJSON(w, http.StatusOK, convJSON(c))
}

// MemberJSON is an active member in the admin API.
type MemberJSON struct {
	User      string    `json:"user"`
	Role      string    `json:"role"`
	FromSeq   int64     `json:"from_seq"`
	JoinedAt  time.Time `json:"joined_at"`
	Delivered int64     `json:"delivered"`
	Read      int64     `json:"read"`
}

func (b *Broker) adminMembers(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("conv")
	if _, err := b.store.GetConversation(r.Context(), id); err != nil {
		b.storeError(w, "conversation "+id, err)
		return
	}
	ms, err := b.store.ActiveMembers(r.Context(), id)
	if err != nil {
		b.storeError(w, "members of "+id, err)
		return
	}
	out := make([]MemberJSON, 0, len(ms))
	for _, m := range ms {
		out = append(out, MemberJSON{User: m.UserID, Role: string(m.Role), FromSeq: m.FromSeq, JoinedAt: m.JoinedAt, Delivered: m.Delivered, Read: m.Read})
	}
	writeJSON(w, http.StatusOK, map[string]any{"members": out})
}

func (b *Broker) adminDeleteConversation(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("conv")
	if err := b.store.DeleteConversation(r.Context(), id); err != nil {
		b.storeError(w, "conversation "+id, err)
		return
	}
	b.log.Info("admin API: conversation deleted", "conv", id)
	w.WriteHeader(http.StatusNoContent)
}

// --- connected clients ---

// ClientJSON is a client connected to this node.
type ClientJSON struct {
	ID              string    `json:"id"`
	Node            string    `json:"node"`
	User            string    `json:"user,omitempty"`
	Remote          string    `json:"remote"`
	RemoteIP        string    `json:"remote_ip,omitempty"`
	Listener        string    `json:"listener"`
	ProtocolVersion byte      `json:"protocol_version"` // 3, 4 (3.1.1) or 5
	ConnectedAt     time.Time `json:"connected_at,omitzero"`
	Subscriptions   int       `json:"subscriptions"`
}

func (b *Broker) clientJSON(cl *mqtt.Client) ClientJSON {
	c := ClientJSON{
		ID: cl.ID, Node: b.cfg.Security.NodeID, User: string(cl.Properties.Username),
		Remote: cl.Net.Remote, Listener: cl.Net.Listener, ProtocolVersion: cl.Properties.ProtocolVersion,
		ConnectedAt: b.sec.clients.get(cl).UTC(), Subscriptions: cl.State.Subscriptions.Len(),
	}
	c.RemoteIP = remoteIP(cl.Net.Remote)
	return c
}

func remoteIP(remote string) string {
	if a := msgrauth.RemoteAddr(remote); a.IsValid() {
		return a.String()
	}
	return ""
}

func (b *Broker) adminListClients(w http.ResponseWriter, _ *http.Request) {
	out := []ClientJSON{}
	for _, cl := range b.mqtt.Clients.GetAll() {
		if cl.Net.Inline || cl.Closed() {
			continue
		}
		out = append(out, b.clientJSON(cl))
	}
	sortClients(out)
	writeJSON(w, http.StatusOK, map[string]any{"node": b.cfg.Security.NodeID, "clients": out})
}

func (b *Broker) adminKickClient(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("client")
	cl, ok := b.mqtt.Clients.Get(id)
	if !ok || cl.Net.Inline || cl.Closed() {
		writeError(w, http.StatusNotFound, "not_found", "client "+id+" is not connected to node "+b.cfg.Security.NodeID)
		return
	}
	_ = b.mqtt.DisconnectClient(cl, packets.ErrAdministrativeAction)
	b.log.Info("admin API: client kicked", "client", id)
	w.WriteHeader(http.StatusNoContent)
}

// --- bans ---

// BanJSON is a ban in the admin API.
type BanJSON struct {
	Kind      string    `json:"kind"` // user or ip
	Value     string    `json:"value"`
	Reason    string    `json:"reason,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	Active    bool      `json:"active"`
}

func banJSON(ban storage.Ban, now time.Time) BanJSON {
	return BanJSON{Kind: string(ban.Kind), Value: ban.Value, Reason: ban.Reason, CreatedAt: ban.CreatedAt, ExpiresAt: ban.ExpiresAt, Active: ban.Active(now)}
}

func (b *Broker) adminListBans(w http.ResponseWriter, r *http.Request) {
	bans, err := b.store.ListBans(r.Context())
	if err != nil {
		b.storeError(w, "bans", err)
		return
	}
	now := time.Now()
	out := make([]BanJSON, 0, len(bans))
	for _, ban := range bans {
		out = append(out, banJSON(ban, now))
	}
	writeJSON(w, http.StatusOK, map[string]any{"bans": out})
}

// BanRequest is the body of POST /admin/v1/bans.
type BanRequest struct {
	Kind     string `json:"kind"`  // user or ip
	Value    string `json:"value"` // user id, IP address or CIDR prefix
	Reason   string `json:"reason,omitempty"`
	Duration string `json:"duration,omitempty"` // Go duration, e.g. "24h"; empty: permanent
}

func (b *Broker) adminAddBan(w http.ResponseWriter, r *http.Request) {
	var req BanRequest
	if !readJSON(w, r, &req) {
		return
	}
	now := time.Now()
	ban := storage.Ban{Kind: storage.BanKind(req.Kind), Value: req.Value, Reason: req.Reason, CreatedAt: now}
	if req.Duration != "" {
		d, err := time.ParseDuration(req.Duration)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, "bad_request", "duration must be a positive Go duration such as 90m or 24h")
			return
		}
		ban.ExpiresAt = now.Add(d)
	}
	if ban.Kind == storage.BanUser && !protocol.ValidID(ban.Value) {
		writeError(w, http.StatusBadRequest, "bad_request", "value must be a user id")
		return
	}
	if len(ban.Reason) > 1024 {
		writeError(w, http.StatusBadRequest, "bad_request", "reason over 1024 bytes")
		return
	}
	ban, err := b.AddBan(r.Context(), ban)
	if err != nil {
		b.storeError(w, "ban "+req.Kind+" "+req.Value, err)
		return
	}
	writeJSON(w, http.StatusCreated, banJSON(ban, now))
}

func (b *Broker) adminRemoveBan(w http.ResponseWriter, r *http.Request) {
	kind, value := storage.BanKind(r.PathValue("kind")), r.PathValue("value")
	if kind != storage.BanUser && kind != storage.BanIP {
		writeError(w, http.StatusBadRequest, "bad_request", "kind must be user or ip")
		return
	}
	if err := b.RemoveBan(r.Context(), kind, value); err != nil {
		b.storeError(w, "ban "+string(kind)+" "+value, err)
		return
	}
	b.log.Info("admin API: ban removed", "kind", kind, "value", value)
	w.WriteHeader(http.StatusNoContent)
}

func sortClients(cs []ClientJSON) {
	slices.SortFunc(cs, func(a, b ClientJSON) int { return strings.Compare(a.ID, b.ID) })
}
