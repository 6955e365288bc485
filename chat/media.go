package chat

import (
	"context"
	"encoding/json"
	"errors"
	"unicode/utf8"

	"github.com/msgrhq/msgr/media"
	"github.com/msgrhq/msgr/protocol"
	"github.com/msgrhq/msgr/storage"
)

// Media resolves media messages (media.Service).
type Media interface {
	// Attach checks that user may send media id and describes it for the
	// message body (thumbnail included).
	Attach(ctx context.Context, user, id string) (protocol.Media, error)
	// Reference records that media id was sent as message seq of convID.
	Reference(ctx context.Context, id, convID string, seq int64) error
}

func (s *Service) validateMedia(b *protocol.Body) error {
	switch {
	case s.cfg.Media == nil:
		return protocol.Errorf(protocol.CodeBadRequest, "media messages are not enabled on this broker")
	case b.Media == nil || b.Media.ID == "":
		return protocol.Errorf(protocol.CodeBadRequest, "body.media.id is required (the id POST /v1/media returned)")
	case b.Media.Type != "" || b.Media.Name != "" || b.Media.Size != 0 || b.Media.Width != 0 || b.Media.Height != 0 || len(b.Media.Thumb) != 0:
		return protocol.Errorf(protocol.CodeBadRequest, "body.media: send only the id; the broker fills in the rest")
	case b.Event != "" || b.User != "" || b.By != "" || b.Role != "" || b.Title != "":
		return protocol.Errorf(protocol.CodeBadRequest, "a media body has only type, media and an optional text caption")
	case len(b.Text) > s.cfg.MaxTextBytes:
		return protocol.Errorf(protocol.CodeTooLarge, "body.text is %d bytes, the limit is %d", len(b.Text), s.cfg.MaxTextBytes)
	case !utf8.ValidString(b.Text):
		return protocol.Errorf(protocol.CodeBadRequest, "body.text is not valid UTF-8")
	}
	return nil
}

// attach fills in a media body from the stored upload.
func (s *Service) attach(ctx context.Context, user string, b protocol.Body) (protocol.Body, error) {
	d, err := s.cfg.Media.Attach(ctx, user, b.Media.ID)
	if err != nil {
		return b, s.mediaError(err, b.Media.ID)
	}
	b.Media = &d
	return b, nil
}

// stored runs in the writer after each commit, before the fan-out: media
// messages get their references recorded first, so that a recipient who
// fetches the original as soon as the message arrives is allowed to.
// A failure is logged; Send records the reference again (below) and
// reports a retryable error if it still fails.
func (s *Service) stored(msgs []storage.Message) {
	if s.cfg.Media != nil {
		ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
		defer cancel()
		for _, m := range msgs {
			if m.Kind == storage.MsgMedia {
				_ = s.reference(ctx, m)
			}
		}
	}
	s.fanout.enqueue(msgs)
}

// reference records the media of a stored media message. Send runs it for
// duplicates too, so that a retry after a failure here completes it.
func (s *Service) reference(ctx context.Context, m storage.Message) error {
	var b protocol.Body
	if err := json.Unmarshal(m.Body, &b); err != nil || b.Media == nil {
		s.log.Error("media message without media", "conv", m.ConvID, "seq", m.Seq, "error", err)
		return protocol.Errorf(protocol.CodeInternal, "stored media message has no media")
	}
	if err := s.cfg.Media.Reference(ctx, b.Media.ID, m.ConvID, m.Seq); err != nil {
		return s.mediaError(err, b.Media.ID)
	}
	return nil
}

func (s *Service) mediaError(err error, id string) error {
	switch {
	case errors.Is(err, media.ErrNotFound):
		return protocol.Errorf(protocol.CodeNotFound, "media %s does not exist (deleted, or never uploaded)", id)
	case errors.Is(err, media.ErrForbidden):
		return protocol.Errorf(protocol.CodeForbidden, "media %s was uploaded by another user", id)
	case errors.Is(err, media.ErrExpired):
		return protocol.Errorf(protocol.CodeNotFound, "media %s: %v", id, err)
	}
	s.log.Error("media failure", "media", id, "error", err)
	return protocol.Errorf(protocol.CodeUnavailable, "media store unavailable, retry later")
}
