package media

import (
	"bytes"
	"encoding/binary"
	"image"
	"testing"
)

func webpChunk(fourCC string, payload []byte) []byte {
	c := append([]byte(fourCC), binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))...)
	c = append(c, payload...)
	if len(payload)%2 == 1 {
		c = append(c, 0)
	}
	return c
}

// metadataWebP is a 1x1 lossless WebP in the extended format carrying an
// EXIF chunk (orientation 6 and a fake GPS string) and an XMP chunk.
func metadataWebP(t testing.TB) []byte {
	t.Helper()
	vp8l := []byte("\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07")
	tiff := []byte("MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00\x00\x00\x00\x00")
	const exifBit, xmpBit = 1 << 3, 1 << 2
	var body []byte
	body = append(body, "WEBP"...)
	body = append(body, webpChunk("VP8X", []byte{exifBit | xmpBit, 0, 0, 0, 0, 0, 0, 0, 0, 0})...)
	body = append(body, webpChunk("VP8L", vp8l)...)
	body = append(body, webpChunk("EXIF", append(tiff, "GPS 48.8584N 2.2945E SECRET-GPS"...))...)
	body = append(body, webpChunk("XMP ", []byte("<x:xmpmeta>SECRET-XMP</x:xmpmeta>"))...)
	return append(append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(len(body)))...), body...)
}

func stripWebP(t testing.TB, in []byte, chunk int) []byte {
	t.Helper()
	var out bytes.Buffer
	writeInChunks(t, newWebPStripper(&out), in, chunk)
	return out.Bytes()
}

func TestWebPStripper(t *testing.T) {
	in := metadataWebP(t)
	out := stripWebP(t, in, len(in))
	for _, chunk := range []int{1, 3, 7, 8, 12, 4096} {
		if got := stripWebP(t, in, chunk); !bytes.Equal(got, out) {
			t.Fatalf("chunks of %d give a different result", chunk)
		}
	}
	if len(out) != len(in) {
		t.Fatalf("stripping changed the size: %d -> %d (the RIFF header would lie)", len(in), len(out))
	}
	for _, secret := range []string{"SECRET-GPS", "SECRET-XMP", "XMP "} {
		if bytes.Contains(out, []byte(secret)) {
			t.Errorf("stripped WebP still contains %q", secret)
		}
	}
	vp8x := bytes.Index(out, []byte("VP8X"))
	if flags := out[vp8x+8]; flags != 1<<3 {
		t.Errorf("VP8X flags %08b, want only EXIF", flags)
	}
	exif := bytes.Index(out, []byte("EXIF"))
	if exif < 0 {
		t.Fatal("the EXIF chunk is gone; the orientation should stay")
	}
	if o := tiffOrientation(out[exif+8:]); o != 6 {
		t.Errorf("orientation after stripping: %d, want 6", o)
	}
	img, format, err := image.Decode(bytes.NewReader(out))
	if err != nil || format != "webp" || img.Bounds().Dx() != 1 {
		t.Fatalf("stripped WebP does not decode: %v %s", err, format)
	}
}

func TestWebPStripperPassesOtherFiles(t *testing.T) {
	for _, in := range [][]byte{
		nil, []byte("RIFF"), []byte("RIFF\x04\x00\x00\x00WAVE"), []byte("GIF89a..."),
		[]byte("RIFF\x1a\x00\x00\x00WEBPVP8"), // cut inside the first chunk header: kept
	} {
		for _, chunk := range []int{1, 1000} {
			if got := stripWebP(t, in, chunk); !bytes.Equal(got, in) {
				t.Errorf("%q (chunks of %d): got %q", in, chunk, got)
			}
		}
	}
	// Cut inside the EXIF chunk: its part is still zeroed.
	full := metadataWebP(t)
	cut := full[:bytes.Index(full, []byte("SECRET-GPS"))+3]
	if got := stripWebP(t, cut, 5); bytes.Contains(got, []byte("GPS 48")) || len(got) != len(cut) {
		t.Errorf("cut WebP: %q", got)
	}
}

// Whatever the input, the stripper never panics, keeps the size and gives
// the same output however the input is split into writes.
func FuzzWebPStripper(f *testing.F) {
	f.Add(metadataWebP(f), uint8(7))
	f.Add([]byte("RIFF\x00\x00\x00\x00WEBPEXIF\x01\x00\x00\x00"), uint8(1))
	f.Fuzz(func(t *testing.T, in []byte, split uint8) {
		whole := stripWebP(t, in, len(in)+1)
		if len(whole) != len(in) {
			t.Fatalf("%d bytes in, %d out", len(in), len(whole))
		}
		if got := stripWebP(t, in, int(split)+1); !bytes.Equal(got, whole) {
			t.Fatalf("writes of %d bytes give a different result", int(split)+1)
		}
	})
}
