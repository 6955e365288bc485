// Package chat is msgr's messaging core, independent of MQTT: it validates
// commands, stores messages through a group-committing writer, fans stored
// messages out to members' inboxes in sequence order, and serves sync and
// history from the store. hooks/chat adapts it to mochi-mqtt.
package chat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"

	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage"
)

// Store is the part of storage.Store the chat core uses.
type Store interface {
	storage.Users
	storage.Conversations
	storage.Messages
	storage.Cursors
	storage.CursorBatches
	storage.Receipts
}

// Publisher delivers payloads to MQTT topics: Publish at QoS 1 for what
// must arrive, Notify at QoS 0 for ephemeral signals (presence, typing)
// that are worthless once late and must not fill offline queues.
type Publisher interface {
	Publish(topic string, payload []byte) error
	Notify(topic string, payload []byte) error
}

// Device identifies the authenticated device a command comes from.
type Device struct {
	User   string
	Device string
}

// Config holds the chat core's limits and tuning; zero values take defaults.
type Config struct {
	MaxTextBytes  int           // longest text body, in bytes
	MaxMembers    int           // largest group, owner included
	MaxBatch      int           // messages per store transaction
	Writers       int           // concurrent store transactions, conversations spread over them (see writerShards)
	FanoutWorkers int           // parallel fan-out lanes (ordered per conversation)
	FanoutQueue   int           // messages queued per lane before senders wait
	MemberCache   time.Duration // how long a conversation's member list is reused
	Cluster       Cluster       // other nodes; nil for a single node
	Now           func() time.Time
	Logger        *slog.Logger
	Media         Media // nil refuses media messages
}

func (c *Config) setDefaults() {
	if c.MaxTextBytes <= 0 {
		c.MaxTextBytes = protocol.DefaultMaxTextBytes
	}
	if c.MaxMembers <= 0 {
		c.MaxMembers = 1024
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 256
	}
	if c.Writers <= 0 {
		c.Writers = 1
	}
	if c.FanoutWorkers <= 0 {
		c.FanoutWorkers = 8
	}
	if c.FanoutQueue <= 0 {
		c.FanoutQueue = 4096
	}
	if c.MemberCache <= 0 {
		c.MemberCache = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Service executes chat commands.
type Service struct {
	cfg      Config
	store    Store
	pub      Publisher
	log      *slog.Logger
	writer   *writerShards
	fanout   *fanout
	presence *presence
	typing   *rateLimiter
	settings *settingsCache
	directs  *directCache
}

// New starts a Service; Close stops its goroutines.
func New(store Store, pub Publisher, cfg Config) *Service {
	cfg.setDefaults()
	var cluster Cluster = newLocalCluster()
	if cfg.Cluster != nil {
		cluster = cfg.Cluster
		pub = routedPublisher{local: pub, cluster: cluster}
	}
	s := &Service{cfg: cfg, store: store, pub: pub, log: cfg.Logger, directs: newDirectCache()}
	s.fanout = newFanout(store, pub, cluster, cfg.FanoutWorkers, cfg.FanoutQueue, cfg.MemberCache, cfg.Now, cfg.Logger)
	s.writer = newWriterShards(cfg.Writers, store, cfg.MaxBatch, s.stored)
	s.presence = newPresence(store, pub, cluster, cfg.Now, cfg.Logger)
	s.typing = newRateLimiter(typingInterval, cfg.Now)
	s.settings = newSettingsCache(store, cfg.MemberCache, cfg.Now)
	return s
}

// Close stops accepting sends, waits for in-flight batches and drains the
// fan-out and presence queues.
func (s *Service) Close() {
	s.writer.close()
	s.fanout.close()
	s.presence.close()
}

// Send validates and stores a text message and returns its "sent" receipt.
// The message is durable when Send returns without error.
func (s *Service) Send(ctx context.Context, from Device, req protocol.Request) (protocol.Sent, error) {
	if err := s.validateSend(req); err != nil {
		return protocol.Sent{}, err
	}
	convID, cached := req.Conv, false
	if req.To != "" {
		var err error
		if convID, cached, err = s.directID(ctx, from.User, req.To); err != nil {
			return protocol.Sent{}, err
		}
	}
	body, kind := *req.Body, storage.MsgText
	if body.Type == protocol.BodyMedia {
		var err error
		if body, err = s.attach(ctx, from.User, body); err != nil {
			return protocol.Sent{}, err
		}
		kind = storage.MsgMedia
	}
	encoded, err := encodeBody(body)
	if err != nil {
		return protocol.Sent{}, err
	}
	msg := storage.NewMessage{
		ConvID:       convID,
		ID:           ulid.Make().String(),
		SenderID:     from.User,
		SenderDevice: from.Device,
		ClientMsgID:  req.CMID,
		Kind:         kind,
		Body:         encoded,
		CreatedAt:    s.cfg.Now(),
	}
	res, err := s.writer.append(ctx, msg)
	if err == nil && cached && errors.Is(res.Err, storage.ErrNotFound) {
		// The cached direct conversation was deleted: look it up (or
		// create it) again and retry once.
		s.directs.forget(from.User, req.To)
		if msg.ConvID, _, err = s.directID(ctx, from.User, req.To); err != nil {
			return protocol.Sent{}, err
		}
		convID = msg.ConvID
		res, err = s.writer.append(ctx, msg)
	}
	if err != nil {
		return protocol.Sent{}, s.storeError("send", err)
	}
	if res.Err != nil {
		return protocol.Sent{}, s.convError(res.Err, convID)
	}
	m := res.Message
	if m.Kind == storage.MsgMedia {
		if err := s.reference(ctx, m); err != nil {
			return protocol.Sent{}, err
		}
	}
	return protocol.Sent{Conv: m.ConvID, Seq: m.Seq, ID: m.ID, CMID: m.ClientMsgID, TS: m.CreatedAt.UnixMilli(), Dup: res.Duplicate}, nil
}

func (s *Service) validateSend(req protocol.Request) error {
	switch {
	case (req.Conv == "") == (req.To == ""):
		return protocol.Errorf(protocol.CodeBadRequest, "exactly one of conv and to is required")
	case req.To != "" && !protocol.ValidID(req.To):
		return protocol.Errorf(protocol.CodeBadRequest, "to: invalid user id")
	case req.Conv != "" && !validConvID(req.Conv):
		return protocol.Errorf(protocol.CodeBadRequest, "conv: invalid conversation id")
	case !validCMID(req.CMID):
		return protocol.Errorf(protocol.CodeBadRequest, "cmid: 1-%d printable ASCII characters required", protocol.MaxCMIDLen)
	case req.Body == nil:
		return protocol.Errorf(protocol.CodeBadRequest, "body is required")
	case req.Body.Type == protocol.BodyMedia:
		return s.validateMedia(req.Body)
	case req.Body.Type != protocol.BodyText:
		return protocol.Errorf(protocol.CodeBadRequest, "body.type %q cannot be sent (supported: text, media)", req.Body.Type)
	case req.Body.Event != "" || req.Body.User != "" || req.Body.By != "" || req.Body.Role != "" || req.Body.Title != "" || req.Body.Media != nil:
		return protocol.Errorf(protocol.CodeBadRequest, "a text body has only type and text")
	case req.Body.Text == "":
		return protocol.Errorf(protocol.CodeBadRequest, "body.text must not be empty")
	case len(req.Body.Text) > s.cfg.MaxTextBytes:
		return protocol.Errorf(protocol.CodeTooLarge, "body.text is %d bytes, the limit is %d", len(req.Body.Text), s.cfg.MaxTextBytes)
	case !utf8.ValidString(req.Body.Text):
		return protocol.Errorf(protocol.CodeBadRequest, "body.text is not valid UTF-8")
	}
	return nil
}

func validCMID(s string) bool {
	if len(s) == 0 || len(s) > protocol.MaxCMIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// validConvID accepts the ULIDs the broker issues; anything else cannot exist.
func validConvID(s string) bool {
	_, err := ulid.ParseStrict(s)
	return err == nil
}

func isNotFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }

// storeError logs an unexpected store failure and returns the retryable
// error clients see; nothing was stored.
func (s *Service) storeError(op string, err error) error {
	if errors.Is(err, errClosed) {
		return protocol.Errorf(protocol.CodeUnavailable, "broker is shutting down, retry")
	}
	s.log.Error("store failure", "op", op, "error", err)
	return fmt.Errorf("%s: %w", op, protocol.Errorf(protocol.CodeUnavailable, "message store unavailable, retry later"))
}

// convError maps conversation-level store errors to protocol errors; other
// errors are store failures.
func (s *Service) convError(err error, convID string) error {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return protocol.Errorf(protocol.CodeNotFound, "conversation %s does not exist", convID)
	case errors.Is(err, storage.ErrNotMember):
		return protocol.Errorf(protocol.CodeNotMember, "you are not a member of conversation %s", convID)
	case errors.Is(err, storage.ErrNotGroup):
		return protocol.Errorf(protocol.CodeBadRequest, "conversation %s is not a group", convID)
	case errors.Is(err, storage.ErrGroupFull):
		return protocol.Errorf(protocol.CodeGroupFull, "group %s has reached %d members", convID, s.cfg.MaxMembers)
	case errors.Is(err, storage.ErrExists):
		return protocol.Errorf(protocol.CodeExists, "already a member of %s", convID)
	}
	return s.storeError("conversation", err)
}
