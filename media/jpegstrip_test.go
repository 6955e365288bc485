package media

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"testing"
)

func segment(marker byte, body []byte) []byte {
	s := []byte{0xFF, marker, 0, 0}
	binary.BigEndian.PutUint16(s[2:], uint16(len(body)+2))
	return append(s, body...)
}

// metadataJPEG is a JPEG carrying EXIF (orientation 6 and a fake GPS
// string), XMP, IPTC, a comment and an ICC profile.
func metadataJPEG(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for y := 0; y < 48; y++ {
		for x := 0; x < 64; x++ {
			img.SetRGBA(x, y, color.RGBA{uint8(x * 4), uint8(y * 5), 77, 255})
		}
	}
	var enc bytes.Buffer
	if err := jpeg.Encode(&enc, img, nil); err != nil {
		t.Fatal(err)
	}
	plain := enc.Bytes()
	tiff := []byte("MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00\x00\x00\x00\x00")
	exif := append(append([]byte("Exif\x00\x00"), tiff...), []byte("GPS 48.8584N 2.2945E SECRET-GPS")...)
	out := []byte{0xFF, 0xD8}
	out = append(out, segment(0xE0, []byte("JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"))...)
	out = append(out, segment(0xE1, exif)...)
	out = append(out, segment(0xE1, []byte("http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>SECRET-XMP</x:xmpmeta>"))...)
	out = append(out, segment(0xED, []byte("Photoshop 3.0\x00SECRET-IPTC"))...)
	out = append(out, segment(0xFE, []byte("SECRET-COMMENT"))...)
	out = append(out, segment(0xE2, []byte("ICC_PROFILE\x00\x01\x01fake-profile"))...)
	return append(out, plain[2:]...)
}

func strip(t testing.TB, in []byte, chunk int) []byte {
	t.Helper()
	var out bytes.Buffer
	writeInChunks(t, newJPEGStripper(&out), in, chunk)
	return out.Bytes()
}

// writeInChunks writes in to w in writes of chunk bytes, then closes w.
func writeInChunks(t testing.TB, w io.WriteCloser, in []byte, chunk int) {
	t.Helper()
	for len(in) > 0 {
		n := min(chunk, len(in))
		if _, err := w.Write(in[:n]); err != nil {
			t.Fatal(err)
		}
		in = in[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestJPEGStripper(t *testing.T) {
	in := metadataJPEG(t)
	out := strip(t, in, len(in))
	for _, chunk := range []int{1, 2, 3, 7, 100} {
		if got := strip(t, in, chunk); !bytes.Equal(got, out) {
			t.Fatalf("writes of %d bytes give a different result", chunk)
		}
	}
	for _, secret := range []string{"SECRET", "GPS", "xmpmeta"} {
		if bytes.Contains(out, []byte(secret)) {
			t.Errorf("stripped JPEG still contains %q", secret)
		}
	}
	for _, kept := range []string{"JFIF", "ICC_PROFILE"} {
		if !bytes.Contains(out, []byte(kept)) {
			t.Errorf("stripped JPEG lost %q", kept)
		}
	}
	if o := jpegOrientation(out); o != 6 {
		t.Errorf("orientation after stripping: %d, want 6", o)
	}
	a, err := jpeg.Decode(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	b, err := jpeg.Decode(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("stripped JPEG does not decode: %v", err)
	}
	if a.Bounds() != b.Bounds() {
		t.Fatalf("bounds %v, want %v", b.Bounds(), a.Bounds())
	}
	for y := 0; y < 48; y++ {
		for x := 0; x < 64; x++ {
			if a.At(x, y) != b.At(x, y) {
				t.Fatalf("pixel %d,%d changed: the image data must be copied untouched", x, y)
			}
		}
	}
}

func TestJPEGStripperPassesOtherFiles(t *testing.T) {
	for _, in := range [][]byte{
		nil, []byte("\xFF"), []byte("\xFF\xD8"), []byte("GIF89a..."), []byte("\x89PNG\r\n\x1a\n...."),
		[]byte("\xFF\xD8\xFF\xE1\x00"), // a JPEG cut inside its first segment: kept as received
	} {
		for _, chunk := range []int{1, 1000} {
			if got := strip(t, in, chunk); !bytes.Equal(got, in) {
				t.Errorf("%q (chunks of %d): got %q", in, chunk, got)
			}
		}
	}
}
