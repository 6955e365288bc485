package media

import "io"

// metadataStripper removes the metadata of JPEG, PNG, GIF and WebP files
// written through it (see each format's stripper); every stripper passes
// the other formats through untouched.
type metadataStripper struct {
	chain []io.WriteCloser // the first is written to; each writes to the next
}

// stripOut is what the format strippers share: the writer they pass the
// file on to, and the bytes they hold while a decision waits for more.
type stripOut struct {
	w    io.Writer
	held []byte
}

func (o *stripOut) emit(b []byte) error {
	_, err := o.w.Write(b)
	return err
}

// flushHeld writes out the held bytes and forgets them.
func (o *stripOut) flushHeld() error {
	held := o.held
	o.held = nil
	if len(held) == 0 {
		return nil
	}
	return o.emit(held)
}

// Payload modes of the chunked formats (PNG, WebP): what happens to the
// bytes of the current chunk.
const (
	chunkCopy = iota // written through
	chunkDrop        // left out
	chunkZero        // replaced by as many zeros
	chunkHold        // appended to held, rewritten when the chunk ends
)

// chunkBody handles the bytes at the start of p that belong to the current
// chunk (at most left of them) as mode says, and returns how many it took.
func (o *stripOut) chunkBody(p []byte, left int64, mode int) (int, error) {
	take := int(min(left, int64(len(p))))
	var err error
	switch mode {
	case chunkCopy:
		_, err = o.w.Write(p[:take])
	case chunkZero:
		_, err = o.w.Write(make([]byte, take))
	case chunkHold:
		o.held = append(o.held, p[:take]...)
	}
	return take, err
}

func newMetadataStripper(w io.Writer) *metadataStripper {
	webp := newWebPStripper(w)
	gif := newGIFStripper(webp)
	png := newPNGStripper(gif)
	jpeg := newJPEGStripper(png)
	return &metadataStripper{chain: []io.WriteCloser{jpeg, png, gif, webp}}
}

func (s *metadataStripper) Write(p []byte) (int, error) { return s.chain[0].Write(p) }

// Close flushes the strippers in order, each into the next.
func (s *metadataStripper) Close() error {
	for _, w := range s.chain {
		if err := w.Close(); err != nil {
			return err
		}
	}
	return nil
}
