package media

import (
	"encoding/binary"
	"hash/crc32"
	"io"
)

// pngSignature starts every PNG file.
const pngSignature = "\x89PNG\r\n\x1a\n"

// maxPNGExif bounds the eXIf chunk the stripper holds to read its
// orientation; a larger one is dropped whole.
const maxPNGExif = 64 << 10

// pngStripper passes a file through to w, removing a PNG's metadata
// chunks: text (tEXt, zTXt, iTXt: authors, comments, software, XMP with
// locations), EXIF (eXIf: GPS position, camera serial) and the
// modification time (tIME). The EXIF orientation survives in a minimal
// eXIf chunk of its own. Chunks that decide how the image looks (header,
// palette, transparency, gamma, colour profile, physical size) and the
// image data are copied untouched, so the image is not re-encoded and
// chunks are never held whole, except an eXIf of at most 64 KiB. Anything
// that is not a PNG passes through unchanged.
type pngStripper struct {
	stripOut       // held: the signature, a chunk header, or an eXIf's data and CRC
	state    int   // pngDeciding, pngHeader, pngBody or pngPassing
	left     int64 // bytes of the current chunk's data and CRC still to come
	mode     int   // chunkCopy, chunkDrop or chunkHold (an eXIf)
	last     bool  // the current chunk is IEND
}

const (
	pngDeciding = iota
	pngHeader
	pngBody
	pngPassing
)

func newPNGStripper(w io.Writer) *pngStripper { return &pngStripper{stripOut: stripOut{w: w}} }

// pngDropped are the chunk types removed.
var pngDropped = map[string]bool{"tEXt": true, "zTXt": true, "iTXt": true, "eXIf": true, "tIME": true}

func (s *pngStripper) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		switch s.state {
		case pngPassing:
			if _, err := s.w.Write(p); err != nil {
				return 0, err
			}
			return n, nil
		case pngDeciding, pngHeader:
			take := min(8-len(s.held), len(p))
			s.held = append(s.held, p[:take]...)
			p = p[take:]
			if len(s.held) < 8 {
				continue
			}
			if err := s.header(); err != nil {
				return 0, err
			}
		case pngBody:
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

// header handles the 8 held bytes: the signature, or a chunk's length and
// type.
func (s *pngStripper) header() error {
	h := s.held
	if s.state == pngDeciding {
		if string(h) != pngSignature {
			return s.pass()
		}
		s.held = s.held[:0]
		s.state = pngHeader
		return s.emit(h)
	}
	length := binary.BigEndian.Uint32(h)
	if length > 1<<31-1 {
		return s.pass() // not a valid PNG from here: leave the rest alone
	}
	typ := string(h[4:8])
	s.left = int64(length) + 4 // data and CRC
	s.last = typ == "IEND"
	s.held = s.held[:0]
	s.state = pngBody
	switch {
	case typ == "eXIf" && length <= maxPNGExif:
		s.mode = chunkHold
	case pngDropped[typ]:
		s.mode = chunkDrop
	default:
		s.mode = chunkCopy
		return s.emit(h)
	}
	return nil
}

// endChunk finishes the current chunk: a held eXIf is replaced by one
// holding only its orientation, and after IEND the rest is copied.
func (s *pngStripper) endChunk() error {
	if s.mode == chunkHold && len(s.held) >= 4 {
		if o := tiffOrientation(s.held[:len(s.held)-4]); o > 1 {
			if err := s.emit(orientationChunk(o)); err != nil {
				return err
			}
		}
	}
	s.held = s.held[:0]
	if s.last {
		s.state = pngPassing
		return nil
	}
	s.state = pngHeader
	return nil
}

// pass switches to copying and writes out the held bytes.
func (s *pngStripper) pass() error {
	s.state = pngPassing
	return s.flushHeld()
}

// Close writes out what is still held: a file that ended inside its
// signature or a chunk header is not a valid PNG and is kept as received
// (an eXIf cut short is dropped).
func (s *pngStripper) Close() error {
	if s.state == pngPassing || s.state == pngBody {
		return nil
	}
	return s.pass()
}

// orientationChunk is an eXIf chunk holding only orientation o.
func orientationChunk(o int) []byte {
	tiff := orientationSegment(o)[10:] // the TIFF of the JPEG segment, after FF E1, length and "Exif\0\0"
	c := make([]byte, 0, 12+len(tiff))
	c = binary.BigEndian.AppendUint32(c, uint32(len(tiff)))
	c = append(c, "eXIf"...)
	c = append(c, tiff...)
	return binary.BigEndian.AppendUint32(c, crc32.ChecksumIEEE(c[4:]))
}
