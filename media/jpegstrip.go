package media

import (
	"encoding/binary"
	"io"
)

// jpegStripper passes a file through to w, removing the metadata segments
// of a JPEG (EXIF with its GPS position and camera serial, XMP, IPTC,
// comments) before the first scan. The EXIF orientation survives in a
// minimal EXIF segment of its own, so that viewers still show the photo
// upright. Segments that affect decoding (quantisation and Huffman tables,
// frame headers, JFIF, the ICC colour profile, Adobe's colour transform)
// are kept; the scan data is copied untouched, so the image is not
// re-encoded. Anything that is not a JPEG passes through unchanged.
type jpegStripper struct {
	stripOut     // held: bytes of the marker section not yet handled
	state    int // stripDeciding, stripMarkers or stripPassing
}

const (
	stripDeciding = iota
	stripMarkers
	stripPassing
)

func newJPEGStripper(w io.Writer) *jpegStripper { return &jpegStripper{stripOut: stripOut{w: w}} }

func (s *jpegStripper) Write(p []byte) (int, error) {
	if s.state == stripPassing {
		return s.w.Write(p)
	}
	s.held = append(s.held, p...)
	if err := s.process(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close writes out whatever is still held (a file that ended inside its
// marker section: not a valid JPEG, stored as received).
func (s *jpegStripper) Close() error {
	return s.pass()
}

// pass switches to copying and writes out the held bytes.
func (s *jpegStripper) pass() error {
	s.state = stripPassing
	return s.flushHeld()
}

// process handles every complete segment in held.
func (s *jpegStripper) process() error {
	for {
		switch s.state {
		case stripPassing:
			return nil
		case stripDeciding:
			if len(s.held) < 3 {
				return nil
			}
			if s.held[0] != 0xFF || s.held[1] != 0xD8 || s.held[2] != 0xFF {
				return s.pass()
			}
			if err := s.emit(s.held[:2]); err != nil {
				return err
			}
			s.held = s.held[2:]
			s.state = stripMarkers
		case stripMarkers:
			if len(s.held) < 2 {
				return nil
			}
			if s.held[0] != 0xFF {
				return s.pass() // not a marker: leave the rest alone
			}
			marker := s.held[1]
			switch {
			case marker == 0xFF: // fill byte
				s.held = s.held[1:]
				continue
			case marker == 0xDA, marker == 0xD9, marker == 0x01, marker >= 0xD0 && marker <= 0xD7:
				// Start of scan (or a marker without a length): from here on
				// it is image data.
				return s.pass()
			}
			if len(s.held) < 4 {
				return nil
			}
			segLen := int(binary.BigEndian.Uint16(s.held[2:]))
			if segLen < 2 {
				return s.pass()
			}
			if len(s.held) < 2+segLen {
				return nil // at most 64 KiB held
			}
			seg := s.held[:2+segLen]
			s.held = s.held[2+segLen:]
			switch {
			case marker == 0xE1: // APP1: EXIF or XMP
				body := seg[4:]
				if len(body) > 6 && string(body[:6]) == "Exif\x00\x00" {
					if o := tiffOrientation(body[6:]); o > 1 {
						if err := s.emit(orientationSegment(o)); err != nil {
							return err
						}
					}
				}
			case marker >= 0xE3 && marker <= 0xED, marker == 0xEF, marker == 0xFE:
				// APP3-APP13 (IPTC, Photoshop, maker data), APP15, COM: dropped.
			default: // APP0 JFIF, APP2 ICC, APP14 Adobe, tables, frame headers
				if err := s.emit(seg); err != nil {
					return err
				}
			}
		}
	}
}

// orientationSegment is an APP1 EXIF segment holding only orientation o.
func orientationSegment(o int) []byte {
	seg := []byte{0xFF, 0xE1, 0, 34, 'E', 'x', 'i', 'f', 0, 0,
		'M', 'M', 0, 42, 0, 0, 0, 8, // big-endian TIFF, IFD0 at 8
		0, 1, // one entry
		0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0, // orientation, SHORT, count 1, value
		0, 0, 0, 0} // no next IFD
	binary.BigEndian.PutUint16(seg[28:], uint16(o))
	return seg
}
