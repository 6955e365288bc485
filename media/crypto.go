package media

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/minio/sio"
)

// Objects are encrypted with DARE 2.0 (github.com/minio/sio): 64 KiB
// packages, each sealed with AES-256-GCM under a per-object key, carrying
// its sequence number and a final flag in the authenticated header, so
// that reordered, truncated, extended or altered objects fail to decrypt.
// Packages are independent, which makes decrypting a byte range cheap:
// fetch the packages covering it and start the decryption at the first
// one's sequence number.
const (
	packagePayload  = 64 << 10
	packageOverhead = 32 // 16-byte header + 16-byte tag
	packageSize     = packagePayload + packageOverhead
)

// Key derivation labels. The media id is part of the info, so an object or
// thumbnail copied under another media's row fails authentication.
const (
	objectKeyInfo = "msgr media object v1 "
	thumbKeyInfo  = "msgr media thumbnail v1 "
)

func deriveKey(dataKey []byte, info, mediaID string) ([]byte, error) {
	k, err := hkdf.Key(sha256.New, dataKey, nil, info+mediaID, 32)
	if err != nil {
		return nil, fmt.Errorf("media: derive key: %w", err)
	}
	return k, nil
}

func sioConfig(key []byte, seq uint32) sio.Config {
	return sio.Config{
		MinVersion:     sio.Version20,
		MaxVersion:     sio.Version20,
		CipherSuites:   []byte{sio.AES_256_GCM},
		Key:            key,
		SequenceNumber: seq,
	}
}

// encryptedSize is the object size for size plaintext bytes.
func encryptedSize(size int64) (int64, error) {
	n, err := sio.EncryptedSize(uint64(size))
	if err != nil {
		return 0, fmt.Errorf("media: %w", err)
	}
	return int64(n), nil
}

// encryptedRange locates the packages holding plaintext bytes
// [off, off+length) of an object of plaintext size size: the object bytes
// to fetch, the first package's sequence number, and how many decrypted
// bytes precede off.
func encryptedRange(off, length, size int64) (encOff, encLen int64, seq uint32, skip int64, err error) {
	if off < 0 || length <= 0 || off+length > size {
		return 0, 0, 0, 0, fmt.Errorf("media: range %d+%d outside %d bytes", off, length, size)
	}
	first := off / packagePayload
	last := (off + length - 1) / packagePayload
	encSize, err := encryptedSize(size)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	encOff = first * packageSize
	encLen = min((last-first+1)*packageSize, encSize-encOff)
	return encOff, encLen, uint32(first), off - first*packagePayload, nil
}

// isCorrupt reports whether err comes from a failed authentication.
func isCorrupt(err error) bool {
	var e sio.Error
	return errors.As(err, &e)
}

// decryptReader decrypts exactly length bytes of a package-aligned stream
// starting at sequence seq, skipping skip bytes first. It never reads past
// the packages holding the range, so a range that ends before the object's
// final package is not mistaken for a truncated object.
func decryptReader(src io.Reader, key []byte, seq uint32, skip, length int64) (io.Reader, error) {
	dec, err := sio.DecryptReader(src, sioConfig(key, seq))
	if err != nil {
		return nil, fmt.Errorf("media: decrypt: %w", err)
	}
	if skip > 0 {
		if _, err := io.CopyN(io.Discard, dec, skip); err != nil {
			return nil, corrupt(err)
		}
	}
	return &exactReader{r: dec, n: length}, nil
}

// exactReader reads exactly n bytes: an early end is an error (a truncated
// object), and nothing is read beyond n.
type exactReader struct {
	r io.Reader
	n int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	n, err := e.r.Read(p)
	e.n -= int64(n)
	if err == io.EOF && e.n > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF {
		return n, corrupt(err)
	}
	if e.n == 0 {
		return n, io.EOF
	}
	return n, err
}

// corrupt marks authentication failures and truncation with ErrCorrupt.
func corrupt(err error) error {
	if isCorrupt(err) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return err
}

// sealThumbnail encrypts a thumbnail with AES-256-GCM under a key derived
// for it; the output is nonce || ciphertext.
func sealThumbnail(dataKey []byte, mediaID string, plain []byte) ([]byte, error) {
	aead, err := thumbAEAD(dataKey, mediaID)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("media: nonce: %w", err)
	}
	return aead.Seal(nonce, nonce, plain, nil), nil
}

func openThumbnail(dataKey []byte, mediaID string, sealed []byte) ([]byte, error) {
	aead, err := thumbAEAD(dataKey, mediaID)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("%w: thumbnail too short", ErrCorrupt)
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], nil)
	if err != nil {
		return nil, fmt.Errorf("%w: thumbnail: %v", ErrCorrupt, err)
	}
	return plain, nil
}

func thumbAEAD(dataKey []byte, mediaID string) (cipher.AEAD, error) {
	key, err := deriveKey(dataKey, thumbKeyInfo, mediaID)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	return cipher.NewGCM(block)
}
