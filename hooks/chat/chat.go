// Package chat is the mochi hook that turns publishes on command topics into
// chat operations (package chat) and answers on the device's reply topic.
//
// OnPublish runs before mochi writes the PUBACK (see docs/ARCHITECTURE.md),
// so a success PUBACK for "send" means the message is stored. Failures are
// reported as an error event plus, for MQTT 5 QoS 1, a PUBACK reason code;
// a 3.1.1 client gets no PUBACK at all when a retry could succeed.
package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/msgrhq/msgr/chat"
	"github.com/msgrhq/msgr/hooks/auth"
	"github.com/msgrhq/msgr/protocol"
)

// Replier publishes a reply to one device at QoS 1, with MQTT 5
// correlation data when the request carried some.
type Replier interface {
	Reply(topic string, payload []byte, correlation []byte) error
}

// Options configure the hook.
type Options struct {
	Service         *chat.Service
	Replies         Replier
	MaxPayloadBytes int           // largest command payload
	Timeout         time.Duration // bound on one command's work
	SyncPushes      int           // concurrent sync pushes on subscribe
	Logger          *slog.Logger
}

// Hook handles chat commands.
type Hook struct {
	mqtt.HookBase
	opts  Options
	slots chan struct{}
	acks  *ackBuffer
	ctx   context.Context
	stop  context.CancelFunc

	mu      sync.Mutex // guards stopped, pushing and wg.Add against Stop
	stopped bool
	pushing map[chat.Device]bool // devices with a sync push waiting to read the store
	wg      sync.WaitGroup
}

// New returns the chat hook.
func New(opts Options) *Hook {
	if opts.MaxPayloadBytes <= 0 {
		opts.MaxPayloadBytes = 64 * 1024
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.SyncPushes <= 0 {
		opts.SyncPushes = 32
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx, stop := context.WithCancel(context.Background())
	h := &Hook{opts: opts, slots: make(chan struct{}, opts.SyncPushes), ctx: ctx, stop: stop}
	h.acks = newAckBuffer(opts.Service.AckMany)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.acks.run(ctx, ackFlushInterval)
	}()
	return h
}

// ID implements mqtt.Hook.
func (h *Hook) ID() string { return "msgr-chat" }

// Provides implements mqtt.Hook.
func (h *Hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnPublish, mqtt.OnSubscribed, mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnPacketRead:
		return true
	}
	return false
}

// Stop cancels sync pushes in progress and waits for them.
func (h *Hook) Stop() error {
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
	h.stop()
	h.wg.Wait()
	return nil
}

// OnPublish executes commands published on msgr/u/USER/cmd/OP. Other
// topics pass through untouched (the ACL hook has already vetted them).
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	t := protocol.ParseTopic(pk.TopicName)
	if t.Kind != protocol.TopicCommand {
		return pk, nil
	}
	user, device, ok := auth.Identity(cl)
	if !ok || t.User != user { // the ACL hook already refused these
		return pk, packets.ErrRejectPacket
	}
	dev := chat.Device{User: user, Device: device}
	req, perr := h.decode(pk, t.Op)
	var ev protocol.Event
	if perr == nil {
		ctx, cancel := context.WithTimeout(h.ctx, h.opts.Timeout)
		ev, perr = h.execute(ctx, dev, t.Op, req)
		cancel()
	}
	if perr != nil {
		ev = protocol.Event{Type: protocol.EvError, Error: perr}
	}
	ev.V, ev.Op, ev.Req = protocol.Version, t.Op, req.ID
	if perr != nil || t.Op != protocol.OpTyping {
		// A typing signal is fire-and-forget: only failures are answered.
		h.reply(dev, pk, ev)
	}
	if perr != nil {
		return pk, ackFor(cl, pk, perr)
	}
	// Success PUBACK, and the command itself is not relayed to anyone.
	return pk, packets.CodeSuccessIgnore
}

func (h *Hook) decode(pk packets.Packet, op protocol.Op) (protocol.Request, *protocol.Error) {
	var req protocol.Request
	if len(pk.Payload) > h.opts.MaxPayloadBytes {
		return req, protocol.Errorf(protocol.CodeTooLarge, "payload is %d bytes, the limit is %d", len(pk.Payload), h.opts.MaxPayloadBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(pk.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		// Still echo the id when the payload is a JSON object with a usable
		// one (an unknown or mistyped field): a 3.1.1 client has no other way
		// to tell which of its requests failed.
		var env struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(pk.Payload, &env) != nil || len(env.ID) > protocol.MaxIDLen {
			env.ID = ""
		}
		return protocol.Request{ID: env.ID}, protocol.Errorf(protocol.CodeBadRequest, "payload is not a valid request: %v", err)
	}
	if dec.More() {
		return protocol.Request{}, protocol.Errorf(protocol.CodeBadRequest, "payload has data after the JSON object")
	}
	if req.V != protocol.Version {
		return req, protocol.Errorf(protocol.CodeBadVersion, "unsupported version v=%d (this broker speaks v=%d)", req.V, protocol.Version)
	}
	if len(req.ID) > protocol.MaxIDLen {
		return protocol.Request{}, protocol.Errorf(protocol.CodeBadRequest, "id is longer than %d characters", protocol.MaxIDLen)
	}
	if !op.Known() {
		return req, protocol.Errorf(protocol.CodeUnknownOp, "unknown command %q", op)
	}
	if err := checkFields(op, req); err != nil {
		return req, err
	}
	return req, nil
}

// execute runs one command and returns its success event.
func (h *Hook) execute(ctx context.Context, dev chat.Device, op protocol.Op, req protocol.Request) (protocol.Event, *protocol.Error) {
	svc := h.opts.Service
	var (
		ev  protocol.Event
		err error
	)
	switch op {
	case protocol.OpSend:
		var sent protocol.Sent
		sent, err = svc.Send(ctx, dev, req)
		ev = protocol.Event{Type: protocol.EvSent, Sent: &sent}
	case protocol.OpSync:
		ev, err = h.syncPage(ctx, dev, req.Ack, req.Limit)
	case protocol.OpAck:
		ev.Type = protocol.EvOK
		err = svc.Ack(ctx, dev, req.Ack)
	case protocol.OpRead:
		ev.Type = protocol.EvOK
		err = svc.MarkRead(ctx, dev, req.Conv, req.Seq)
	case protocol.OpReceipts:
		ev.Type = protocol.EvReceipts
		ev.Receipts, err = svc.Receipts(ctx, dev, req.Conv)
	case protocol.OpTyping:
		err = svc.Typing(ctx, dev, req.Conv)
	case protocol.OpPresence:
		ev.Type = protocol.EvPresence
		ev.Presence, err = svc.Presence(ctx, dev, req.Users)
	case protocol.OpSettings:
		var set protocol.Settings
		set, err = svc.Settings(ctx, dev, req.Presence, req.ReadReceipts)
		ev = protocol.Event{Type: protocol.EvSettings, Settings: &set}
	case protocol.OpHistory:
		ev.Type = protocol.EvHistory
		ev.Msgs, ev.More, err = svc.History(ctx, dev, req.Conv, req.Before, req.Limit)
	case protocol.OpConversations:
		ev.Type = protocol.EvConversations
		ev.Convs, err = svc.Conversations(ctx, dev, req.Limit)
	default:
		var c protocol.Conversation
		c, err = h.conversationOp(ctx, dev, op, req)
		ev = protocol.Event{Type: protocol.EvConversation, Conv: &c}
	}
	if err != nil {
		return protocol.Event{}, protocol.AsError(err)
	}
	return ev, nil
}

func (h *Hook) conversationOp(ctx context.Context, dev chat.Device, op protocol.Op, req protocol.Request) (protocol.Conversation, error) {
	svc := h.opts.Service
	switch op {
	case protocol.OpDirect:
		return svc.Direct(ctx, dev, req.User)
	case protocol.OpGroupCreate:
		return svc.CreateGroup(ctx, dev, req.Title, req.Members)
	case protocol.OpGroupAdd:
		return svc.AddMember(ctx, dev, req.Conv, req.User, req.Role)
	case protocol.OpGroupRemove:
		return svc.RemoveMember(ctx, dev, req.Conv, req.User)
	case protocol.OpGroupLeave:
		return svc.Leave(ctx, dev, req.Conv)
	case protocol.OpGroupRole:
		return svc.SetRole(ctx, dev, req.Conv, req.User, req.Role)
	case protocol.OpConversation:
		return svc.Conversation(ctx, dev, req.Conv)
	}
	return protocol.Conversation{}, protocol.Errorf(protocol.CodeUnknownOp, "unknown command %q", op)
}

// reply publishes ev to the request's response topic when it is one of the
// user's device topics, else to the sending device's topic.
func (h *Hook) reply(dev chat.Device, pk packets.Packet, ev protocol.Event) {
	topic := protocol.DeviceTopic(dev.User, dev.Device)
	if rt := pk.Properties.ResponseTopic; rt != "" {
		if t := protocol.ParseTopic(rt); t.Kind == protocol.TopicDevice && t.User == dev.User {
			topic = rt
		}
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		h.opts.Logger.Error("encode reply", "op", ev.Op, "error", err)
		return
	}
	if err := h.opts.Replies.Reply(topic, payload, pk.Properties.CorrelationData); err != nil {
		h.opts.Logger.Warn("publish reply", "topic", topic, "error", err)
	}
}

// ackFor chooses what mochi acknowledges for a failed command. A
// packets.Code must be returned bare: mochi panics on a wrapped one.
func ackFor(cl *mqtt.Client, pk packets.Packet, perr *protocol.Error) error {
	if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos == 1 {
		return packets.Code{Code: reasonCode(perr.Code), Reason: string(perr.Code)}
	}
	if perr.Code.Retryable() {
		// Nothing was done: no acknowledgement, so the client retransmits.
		return packets.ErrRejectPacket
	}
	// A permanent error: acknowledge so the client does not retransmit;
	// the error event explains.
	return packets.CodeSuccessIgnore
}

func reasonCode(c protocol.Code) byte {
	switch c {
	case protocol.CodeBadRequest, protocol.CodeBadVersion:
		return packets.ErrPayloadFormatInvalid.Code
	case protocol.CodeTooLarge:
		return packets.ErrPacketTooLarge.Code
	case protocol.CodeNotMember, protocol.CodeForbidden:
		return packets.ErrNotAuthorized.Code
	case protocol.CodeGroupFull:
		return packets.ErrQuotaExceeded.Code
	case protocol.CodeRateLimited:
		return packets.ErrMessageRateTooHigh.Code
	case protocol.CodeUnknownOp, protocol.CodeNotFound, protocol.CodeExists:
		return packets.ErrImplementationSpecificError.Code
	}
	return packets.ErrUnspecifiedError.Code
}

// OnSubscribed pushes the first sync page when a device subscribes to its
// device topic, so that a reconnecting device gets what it missed without
// asking. It runs in the background: the client's read loop must not wait
// for the store.
func (h *Hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	user, device, ok := auth.Identity(cl)
	if !ok {
		return
	}
	own := protocol.DeviceTopic(user, device)
	for i, f := range pk.Filters {
		if f.Filter == own && i < len(codes) && codes[i] < packets.ErrUnspecifiedError.Code {
			h.PushSync(chat.Device{User: user, Device: device})
			return
		}
	}
}

// PushSync pushes the first sync page of what dev has not acknowledged to
// its device topic, in the background. The cluster layer calls it when a
// forwarded event for a device on this node may have been lost.
func (h *Hook) PushSync(dev chat.Device) {
	h.mu.Lock()
	defer h.mu.Unlock()
	// At most one queued push per device: a client re-subscribing in a
	// loop must not pile up goroutines. A skipped push loses nothing: the
	// queued one has not read the store yet.
	if !h.stopped && !h.pushing[dev] {
		if h.pushing == nil {
			h.pushing = make(map[chat.Device]bool)
		}
		h.pushing[dev] = true
		h.wg.Add(1)
		go h.pushSync(dev)
	}
}

func (h *Hook) pushSync(dev chat.Device) {
	defer h.wg.Done()
	// The mark only covers a push that has not read the store yet: a
	// subscription after the read gets a push of its own.
	unmark := sync.OnceFunc(func() {
		h.mu.Lock()
		delete(h.pushing, dev)
		h.mu.Unlock()
	})
	defer unmark()
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	case <-h.ctx.Done():
		return
	}
	unmark()
	ctx, cancel := context.WithTimeout(h.ctx, h.opts.Timeout)
	defer cancel()
	ev, err := h.syncPage(ctx, dev, nil, 0)
	ev.V, ev.Op = protocol.Version, protocol.OpSync
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return
		}
		ev = protocol.Event{V: protocol.Version, Type: protocol.EvError, Op: protocol.OpSync, Error: protocol.AsError(err)}
	}
	h.reply(dev, packets.Packet{}, ev)
}

// checkFields refuses request fields the op does not take, so that a
// misspelt command fails loudly instead of being half understood.
func checkFields(op protocol.Op, r protocol.Request) *protocol.Error {
	fields := [...]struct {
		name string
		set  bool
	}{
		{"conv", r.Conv != ""}, {"to", r.To != ""}, {"cmid", r.CMID != ""}, {"body", r.Body != nil},
		{"user", r.User != ""}, {"role", r.Role != ""}, {"title", r.Title != ""}, {"members", r.Members != nil},
		{"before", r.Before != 0}, {"limit", r.Limit != 0}, {"ack", r.Ack != nil},
		{"seq", r.Seq != 0}, {"users", r.Users != nil}, {"presence", r.Presence != ""}, {"read_receipts", r.ReadReceipts != nil},
	}
	for _, f := range fields {
		if f.set && !opTakes(op, f.name) {
			return protocol.Errorf(protocol.CodeBadRequest, "field %q is not used by %s", f.name, op)
		}
	}
	return nil
}

func opTakes(op protocol.Op, field string) bool {
	switch op {
	case protocol.OpSend:
		return field == "conv" || field == "to" || field == "cmid" || field == "body"
	case protocol.OpSync:
		return field == "limit" || field == "ack"
	case protocol.OpAck:
		return field == "ack"
	case protocol.OpHistory:
		return field == "conv" || field == "before" || field == "limit"
	case protocol.OpDirect:
		return field == "user"
	case protocol.OpGroupCreate:
		return field == "title" || field == "members"
	case protocol.OpGroupAdd, protocol.OpGroupRole:
		return field == "conv" || field == "user" || field == "role"
	case protocol.OpGroupRemove:
		return field == "conv" || field == "user"
	case protocol.OpGroupLeave, protocol.OpConversation, protocol.OpReceipts, protocol.OpTyping:
		return field == "conv"
	case protocol.OpRead:
		return field == "conv" || field == "seq"
	case protocol.OpPresence:
		return field == "users"
	case protocol.OpSettings:
		return field == "presence" || field == "read_receipts"
	case protocol.OpConversations:
		return field == "limit"
	}
	return false
}

// syncPage returns one sync page; the last one (more == false) also lists
// the conversations with unread messages.
func (h *Hook) syncPage(ctx context.Context, dev chat.Device, acks []protocol.Cursor, limit int) (protocol.Event, error) {
	ev := protocol.Event{Type: protocol.EvSync}
	var err error
	ev.Msgs, ev.More, err = h.opts.Service.Sync(ctx, dev, acks, limit)
	if err == nil && !ev.More {
		ev.Unread, err = h.opts.Service.Unread(ctx, dev)
	}
	return ev, err
}

// OnSessionEstablished counts the connection for presence.
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if user, device, ok := auth.Identity(cl); ok {
		h.opts.Service.Connected(chat.Device{User: user, Device: device}, cl)
	}
}

// OnDisconnect forgets the connection for presence. On a takeover mochi
// calls it for the old connection after the new one is established, so
// the user stays online.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if user, device, ok := auth.Identity(cl); ok {
		h.opts.Service.Disconnected(chat.Device{User: user, Device: device}, cl)
	}
}
