package media

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"testing"
)

func pngChunk(typ string, data []byte) []byte {
	c := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	c = append(c, typ...)
	c = append(c, data...)
	return binary.BigEndian.AppendUint32(c, crc32.ChecksumIEEE(c[4:]))
}

// metadataPNG is a PNG carrying text chunks, an EXIF chunk (orientation 6
// and a fake GPS string) and a modification time, before and after the
// image data, plus a gamma chunk that must survive.
func metadataPNG(t testing.TB) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 40, 30))
	for y := 0; y < 30; y++ {
		for x := 0; x < 40; x++ {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x * 6), uint8(y * 8), 99, 255})
		}
	}
	var enc bytes.Buffer
	if err := png.Encode(&enc, img); err != nil {
		t.Fatal(err)
	}
	plain := enc.Bytes()
	ihdrEnd := 8 + 8 + 13 + 4 // signature, IHDR length and type, data, CRC
	iend := plain[len(plain)-12:]
	tiff := []byte("MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00\x00\x00\x00\x00")
	out := append([]byte(nil), plain[:ihdrEnd]...)
	out = append(out, pngChunk("gAMA", []byte{0, 0, 0xB1, 0x8F})...)
	out = append(out, pngChunk("tEXt", []byte("Author\x00SECRET-AUTHOR"))...)
	out = append(out, pngChunk("eXIf", append(tiff, "GPS 48.8584N 2.2945E SECRET-GPS"...))...)
	out = append(out, pngChunk("iTXt", []byte("XML:com.adobe.xmp\x00\x00\x00\x00\x00<x:xmpmeta>SECRET-XMP</x:xmpmeta>"))...)
	out = append(out, plain[ihdrEnd:len(plain)-12]...) // the image data
	out = append(out, pngChunk("tIME", []byte{0x07, 0xEA, 11, 30, 12, 0, 0})...)
	out = append(out, pngChunk("zTXt", []byte("Comment\x00\x00SECRET-Z"))...)
	return append(out, iend...)
}

func stripPNG(t testing.TB, in []byte, chunk int) []byte {
	t.Helper()
	var out bytes.Buffer
	writeInChunks(t, newPNGStripper(&out), in, chunk)
	return out.Bytes()
}

func TestPNGStripper(t *testing.T) {
	in := metadataPNG(t)
	out := stripPNG(t, in, len(in))
	for _, chunk := range []int{1, 3, 7, 8, 13, 4096} {
		if got := stripPNG(t, in, chunk); !bytes.Equal(got, out) {
			t.Fatalf("chunks of %d give a different result", chunk)
		}
	}
	for _, secret := range []string{"SECRET-AUTHOR", "SECRET-GPS", "SECRET-XMP", "SECRET-Z", "tIME", "zTXt", "tEXt", "iTXt"} {
		if bytes.Contains(out, []byte(secret)) {
			t.Errorf("stripped PNG still contains %q", secret)
		}
	}
	if !bytes.Contains(out, []byte("gAMA")) {
		t.Error("stripped PNG lost its gamma chunk")
	}
	// The orientation survives in a minimal eXIf chunk with a valid CRC.
	i := bytes.Index(out, []byte("eXIf"))
	if i < 4 {
		t.Fatal("no eXIf chunk with the orientation")
	}
	n := int(binary.BigEndian.Uint32(out[i-4:]))
	if o := tiffOrientation(out[i+4 : i+4+n]); o != 6 {
		t.Errorf("orientation after stripping: %d, want 6", o)
	}
	if crc := binary.BigEndian.Uint32(out[i+4+n:]); crc != crc32.ChecksumIEEE(out[i:i+4+n]) {
		t.Error("eXIf chunk CRC is wrong")
	}
	want, err := png.Decode(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	got, err := png.Decode(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("stripped PNG does not decode: %v", err)
	}
	if got.Bounds() != want.Bounds() {
		t.Fatalf("bounds %v, want %v", got.Bounds(), want.Bounds())
	}
	for y := want.Bounds().Min.Y; y < want.Bounds().Max.Y; y++ {
		for x := want.Bounds().Min.X; x < want.Bounds().Max.X; x++ {
			if got.At(x, y) != want.At(x, y) {
				t.Fatalf("pixel (%d, %d) is %v, want %v", x, y, got.At(x, y), want.At(x, y))
			}
		}
	}
}

func TestPNGStripperPassesOtherFiles(t *testing.T) {
	sig := []byte(pngSignature)
	for _, in := range [][]byte{
		nil, []byte("\x89PN"), []byte("GIF89a..."), []byte("\xFF\xD8\xFF\xE0 a JPEG"),
		append(append([]byte(nil), sig...), 0, 0),                   // cut inside the first chunk header: kept
		append(append([]byte(nil), sig...), 0xFF, 0xFF, 0xFF, 0xFF), // impossible length: the rest is kept
	} {
		for _, chunk := range []int{1, 1000} {
			if got := stripPNG(t, in, chunk); !bytes.Equal(got, in) {
				t.Errorf("%q (chunks of %d): got %q", in, chunk, got)
			}
		}
	}
}

// Whatever the input, the stripper never panics, and its output does not
// depend on how the input is split into writes.
func FuzzPNGStripper(f *testing.F) {
	f.Add(metadataPNG(f), uint8(7))
	f.Add([]byte(pngSignature+"\x00\x00\x00\x04eXIf\x00\x00\x00\x00"), uint8(1))
	f.Add([]byte("not a png"), uint8(3))
	f.Fuzz(func(t *testing.T, in []byte, split uint8) {
		whole := stripPNG(t, in, len(in)+1)
		if got := stripPNG(t, in, int(split)+1); !bytes.Equal(got, whole) {
			t.Fatalf("writes of %d bytes give a different result", int(split)+1)
		}
	})
}
