package seal

import (
	"fmt"

	"github.com/msgrhq/msgr/storage"
)

// Row is a messages row as a store reads it: Body is sealed under the data
// key KeyID, or plaintext when KeyID is 0.
type Row struct {
	storage.Message
	KeyID int64
}

// OpenRows returns the rows' messages with their bodies opened by sealer,
// which is nil for a store opened without a master key. keys maps the ids
// of the conversations' existing data keys to their wrapped form; a body
// whose key is gone was shredded and reads back as storage.ShreddedBody.
func OpenRows(sealer storage.Sealer, rows []Row, keys map[int64]string) ([]storage.Message, error) {
	out := make([]storage.Message, len(rows))
	for i, r := range rows {
		out[i] = r.Message
		body, err := openBody(sealer, r, keys)
		if err != nil {
			return nil, err
		}
		out[i].Body = body
	}
	return out, nil
}

func openBody(sealer storage.Sealer, r Row, keys map[int64]string) ([]byte, error) {
	switch {
	case sealer == nil && r.KeyID == 0:
		return r.Body, nil
	case sealer == nil:
		return nil, fmt.Errorf("message %s/%d: %w", r.ConvID, r.Seq, storage.ErrEncrypted)
	case r.KeyID == 0:
		// Opening the store with a key encrypted every plaintext row; one
		// now means a writer without a master key shares the database.
		return nil, fmt.Errorf("message %s/%d is stored unencrypted (written by a process without a master key?): restart with the master key to encrypt it", r.ConvID, r.Seq)
	}
	wrapped, ok := keys[r.KeyID]
	if !ok {
		return storage.ShreddedBody, nil
	}
	return sealer.Open(wrapped, storage.BodyRef{ConvID: r.ConvID, Seq: r.Seq, KeyID: r.KeyID}, r.Body)
}
