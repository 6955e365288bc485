package media

import (
	"encoding/binary"
	"io"
)

// webpStripper passes a file through to w, removing a WebP's metadata
// without changing its size, so that the RIFF header written first stays
// true: an EXIF chunk keeps only its orientation (a minimal TIFF, the rest
// zeroed; all zeros above 64 KiB, which is not held), an XMP chunk becomes
// an unknown chunk of zeros (which readers skip) and the extended header
// stops announcing XMP. The image data and
// every other chunk are copied untouched. Anything that is not a WebP
// passes through unchanged.
type webpStripper struct {
	stripOut       // held: the RIFF header, a chunk header, or a held chunk
	state    int   // webpDeciding, webpHeader, webpBody or webpPassing
	left     int64 // bytes of the current chunk's payload (and pad) still to come
	mode     int   // chunkCopy, chunkZero or chunkHold (VP8X, EXIF)
}

const (
	webpDeciding = iota
	webpHeader
	webpBody
	webpPassing
)

// webpUnknown replaces the FourCC of an XMP chunk.
const webpUnknown = "JUNK"

func newWebPStripper(w io.Writer) *webpStripper { return &webpStripper{stripOut: stripOut{w: w}} }

func (s *webpStripper) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		switch s.state {
		case webpPassing:
			if _, err := s.w.Write(p); err != nil {
				return 0, err
			}
			return n, nil
		case webpDeciding, webpHeader:
			want := 8
			if s.state == webpDeciding {
				want = 12
			}
			take := min(want-len(s.held), len(p))
			s.held = append(s.held, p[:take]...)
			p = p[take:]
			if len(s.held) < want {
				continue
			}
			if err := s.header(); err != nil {
				return 0, err
			}
		case webpBody:
			take, err := s.chunkBody(p, s.left, s.mode)
			if err != nil {
				return 0, err
			}
			p = p[take:]
			s.left -= int64(take)
			if s.left == 0 {
				if err := s.endChunk(); err != nil {
					return 0, err
				}
			}
		}
	}
	return n, nil
}

// header handles the held RIFF header or chunk header.
func (s *webpStripper) header() error {
	h := s.held
	if s.state == webpDeciding {
		if string(h[:4]) != "RIFF" || string(h[8:12]) != "WEBP" {
			return s.pass()
		}
		s.held = nil
		s.state = webpHeader
		return s.emit(h)
	}
	size := int64(binary.LittleEndian.Uint32(h[4:]))
	s.left = size + size&1 // payloads are padded to an even length
	s.held = nil
	s.state = webpBody
	switch fourCC := string(h[:4]); {
	case fourCC == "VP8X" && size == 10, fourCC == "EXIF" && size <= maxPNGExif:
		s.mode = chunkHold
		s.held = append(make([]byte, 0, 8+s.left), h...)
		return s.bodyDone()
	case fourCC == "XMP ":
		s.mode = chunkZero
		h = append([]byte(webpUnknown), h[4:]...)
	case fourCC == "EXIF":
		s.mode = chunkZero // too large to hold: its orientation is lost too
	default:
		s.mode = chunkCopy
	}
	if err := s.emit(h); err != nil {
		return err
	}
	return s.bodyDone()
}

// bodyDone ends an empty chunk at once.
func (s *webpStripper) bodyDone() error {
	if s.left == 0 {
		return s.endChunk()
	}
	return nil
}

// endChunk writes out a held chunk, rewritten, and reads the next header.
func (s *webpStripper) endChunk() error {
	if s.mode == chunkHold {
		c := s.held
		s.held = nil
		body := c[8:]
		switch string(c[:4]) {
		case "VP8X":
			const xmpBit = 1 << 2
			if len(body) > 0 {
				body[0] &^= xmpBit
			}
		case "EXIF":
			// Some writers keep JPEG's "Exif\0\0" in front of the TIFF.
			tiff := body
			if len(tiff) >= 6 && string(tiff[:6]) == "Exif\x00\x00" {
				tiff = tiff[6:]
			}
			o := max(tiffOrientation(tiff), 1)
			minimal := orientationSegment(o)[10:]
			clear(tiff)
			if len(tiff) >= len(minimal) {
				copy(tiff, minimal)
			}
		}
		if err := s.emit(c); err != nil {
			return err
		}
	}
	s.state = webpHeader
	return nil
}

// pass switches to copying and writes out the held bytes.
func (s *webpStripper) pass() error {
	s.state = webpPassing
	return s.flushHeld()
}

// Close writes out what is still held: a file that ended inside a header
// is not a valid WebP and is kept as received; a held chunk cut short is
// rewritten as far as it goes, so its EXIF is dropped all the same.
func (s *webpStripper) Close() error {
	switch {
	case s.state == webpBody && s.mode == chunkHold:
		return s.endChunk()
	case s.state == webpBody:
		return nil
	}
	return s.pass()
}
