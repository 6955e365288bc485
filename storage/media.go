package storage

import (
	"context"
	"time"
)

// Media is an uploaded file's metadata. The content itself is an encrypted
// object in the blob store under the media id; nothing here is plaintext
// content except the sniffed type, name, size and dimensions.
type Media struct {
	ID          string // ULID, also the blob key's last part
	OwnerID     string // the uploading user
	ContentType string // sniffed from the bytes, never the client's claim
	Name        string // sanitised original file name
	Size        int64  // plaintext bytes
	WrappedKey  string // the object's data key wrapped by the master key (keyring.Wrapped text)
	Thumbnail   []byte // encrypted JPEG thumbnail; nil for non-images
	Width       int    // image dimensions after EXIF orientation; 0 for non-images
	Height      int
	CreatedAt   time.Time
}

// MediaRef records that a media was sent as message Seq of ConvID.
type MediaRef struct {
	MediaID string
	ConvID  string
	Seq     int64
}

// MediaStore stores media metadata and where media were sent.
type MediaStore interface {
	// CreateMedia inserts m; ErrExists if the id is taken, ErrNotFound if
	// the owner does not exist.
	CreateMedia(ctx context.Context, m Media) error
	// GetMedia returns a media or ErrNotFound.
	GetMedia(ctx context.Context, id string) (Media, error)
	// DeleteMedia removes a media and its references; ErrNotFound if absent.
	DeleteMedia(ctx context.Context, id string) error
	// AddMediaRef records a reference; recording it again is no error.
	// ErrNotFound if the media or the conversation does not exist.
	AddMediaRef(ctx context.Context, ref MediaRef) error
	// MediaRefs lists a media's references ordered by ConvID, Seq.
	MediaRefs(ctx context.Context, mediaID string) ([]MediaRef, error)
	// CanReadMedia reports whether userID owns the media or is or was a
	// member of a conversation that references it at a seq within the
	// membership's visible range (FromSeq <= seq, and seq <= UntilSeq
	// unless active). False, not an error, when the media does not exist.
	CanReadMedia(ctx context.Context, mediaID, userID string) (bool, error)
	// UnreferencedMedia lists up to limit media created before the given
	// time that no message references, oldest first.
	UnreferencedMedia(ctx context.Context, before time.Time, limit int) ([]Media, error)
	// AddMediaUsage adds bytes to what userID uploaded on day (a UTC date;
	// the time of day is ignored) unless the total would exceed limit, in
	// one atomic step; it reports whether it added them.
	AddMediaUsage(ctx context.Context, userID string, day time.Time, bytes, limit int64) (bool, error)
	// PruneMediaUsage forgets the usage of days before day and returns how
	// many user-days it removed.
	PruneMediaUsage(ctx context.Context, day time.Time) (int64, error)
}

// MsgMedia is the Message.Kind of a message carrying a media (protocol.BodyMedia).
const MsgMedia = "media"
