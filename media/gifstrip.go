package media

import "io"

// gifStripper passes a file through to w, removing a GIF's comment
// extensions and XMP application extensions. Everything that decides how
// the image looks or plays (colour tables, graphic control, image data,
// the NETSCAPE looping extension, other application extensions) is copied
// untouched. GIF records no total size, so blocks can simply be left out.
// Anything that is not a GIF passes through unchanged.
type gifStripper struct {
	stripOut      // held: bytes of a fixed-size part being read
	state    int  // see the gif* states
	need     int  // how many bytes the current state holds (gifHold) or copies (gifCopy)
	next     int  // the state after a gifHold or gifCopy
	keep     bool // the current extension's sub-blocks are copied
}

// States.
const (
	gifDeciding = iota // the 6-byte header and 7-byte screen descriptor
	gifBlock           // the byte that introduces the next block
	gifExtLabel        // an extension's label
	gifAppFirst        // an application extension's first sub-block, held to read its identifier
	gifImage           // an image descriptor (9 bytes)
	gifLZW             // the LZW minimum code size before the image data
	gifSubSize         // a data sub-block's size byte; 0 ends the block
	gifSubData         // a data sub-block's bytes
	gifCopy            // need bytes copied (a colour table), then next
	gifPassing         // everything else copied
)

func newGIFStripper(w io.Writer) *gifStripper { return &gifStripper{stripOut: stripOut{w: w}} }

func (s *gifStripper) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if s.state == gifPassing {
			if _, err := s.w.Write(p); err != nil {
				return 0, err
			}
			return n, nil
		}
		if s.state == gifCopy || s.state == gifSubData {
			take := min(s.need, len(p))
			if s.state == gifCopy || s.keep {
				if _, err := s.w.Write(p[:take]); err != nil {
					return 0, err
				}
			}
			p = p[take:]
			s.need -= take
			if s.need == 0 {
				s.state = s.next
			}
			continue
		}
		take := min(s.want()-len(s.held), len(p))
		s.held = append(s.held, p[:take]...)
		p = p[take:]
		if len(s.held) < s.want() { // an application extension's want grows once its size is read
			continue
		}
		if err := s.step(); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// want is how many bytes the current state reads before it decides.
func (s *gifStripper) want() int {
	switch s.state {
	case gifDeciding:
		return 13 // header and logical screen descriptor
	case gifExtLabel:
		return 2 // introducer and label
	case gifImage:
		return 10 // separator and image descriptor
	case gifAppFirst:
		if len(s.held) < 3 {
			return 3 // introducer, label, first sub-block's size
		}
		return 3 + int(s.held[2])
	}
	return 1
}

// step acts on the held bytes of the current state.
func (s *gifStripper) step() error {
	h := s.held
	s.held = nil
	switch s.state {
	case gifDeciding:
		if string(h[:6]) != "GIF87a" && string(h[:6]) != "GIF89a" {
			s.held = h
			return s.pass()
		}
		return s.emitThenTable(h, h[10], gifBlock)
	case gifBlock:
		switch h[0] {
		case 0x21:
			s.state = gifExtLabel
			s.held = h // written with the label, if kept
			return nil
		case 0x2C:
			s.state = gifImage
			s.held = h
			return nil
		case 0x3B:
			s.state = gifPassing // the trailer, and anything after it, as received
			return s.emit(h)
		}
		s.held = h
		return s.pass() // not a block: leave the rest alone
	case gifExtLabel:
		switch h[1] {
		case 0xFE: // comment
			s.keep = false
			s.state = gifSubSize
		case 0xFF: // application: its identifier decides
			s.state = gifAppFirst
			s.held = h
		default:
			s.keep = true
			s.state = gifSubSize
			return s.emit(h)
		}
		return nil
	case gifAppFirst:
		// h is the introducer and label, then the first sub-block.
		intro, first := h[:2], h[2:]
		s.keep = !(len(first) == 12 && string(first[1:12]) == "XMP DataXMP")
		if s.keep {
			if err := s.emit(intro); err != nil {
				return err
			}
			if err := s.emit(first); err != nil {
				return err
			}
		}
		if first[0] == 0 { // an empty first sub-block ends the extension
			s.state = gifBlock
			return nil
		}
		s.state = gifSubSize
		return nil
	case gifImage:
		// h is 0x2C and the 9-byte descriptor.
		return s.emitThenTable(h, h[9], gifLZW)
	case gifLZW:
		s.keep = true
		s.state = gifSubSize
		return s.emit(h)
	case gifSubSize:
		if s.keep {
			if err := s.emit(h); err != nil {
				return err
			}
		}
		if h[0] == 0 {
			s.state = gifBlock
			return nil
		}
		s.need, s.next, s.state = int(h[0]), gifSubSize, gifSubData
		return nil
	}
	return nil
}

// emitThenTable writes b, whose packed byte flags announces a colour table
// after it when its top bit is set, and copies that table before moving
// to next.
func (s *gifStripper) emitThenTable(b []byte, flags byte, next int) error {
	if err := s.emit(b); err != nil {
		return err
	}
	s.state = next
	if flags&0x80 != 0 {
		s.need, s.next, s.state = 3<<(flags&7+1), next, gifCopy
	}
	return nil
}

// pass switches to copying and writes out the held bytes.
func (s *gifStripper) pass() error {
	s.state = gifPassing
	return s.flushHeld()
}

// Close writes out what is still held of a file that ended early (not a
// valid GIF; a dropped extension's bytes stay dropped).
func (s *gifStripper) Close() error {
	if s.state == gifAppFirst || s.state == gifSubData || s.state == gifSubSize {
		return nil
	}
	return s.pass()
}
