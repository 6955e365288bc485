package media

import (
	"bytes"
	"image"
	"image/color"
	"image/gif"
	"testing"
)

// gifSubBlocks splits data into GIF data sub-blocks and terminates them.
func gifSubBlocks(data []byte) []byte {
	var out []byte
	for len(data) > 0 {
		n := min(255, len(data))
		out = append(out, byte(n))
		out = append(out, data[:n]...)
		data = data[n:]
	}
	return append(out, 0)
}

// metadataGIF is a two-frame looping GIF carrying comments and an XMP
// application extension, before the first frame and before the trailer.
func metadataGIF(t testing.TB) []byte {
	t.Helper()
	pal := color.Palette{color.White, color.Black, color.RGBA{200, 0, 0, 255}}
	anim := &gif.GIF{LoopCount: 0, Delay: []int{10, 10}}
	for f := range 2 {
		img := image.NewPaletted(image.Rect(0, 0, 20, 10), pal)
		for x := range 20 {
			img.SetColorIndex(x, (x+f)%10, uint8(1+f))
		}
		anim.Image = append(anim.Image, img)
	}
	var enc bytes.Buffer
	if err := gif.EncodeAll(&enc, anim); err != nil {
		t.Fatal(err)
	}
	plain := enc.Bytes()
	start := 13
	if plain[10]&0x80 != 0 {
		start += 3 << (plain[10]&7 + 1)
	}
	comment := append([]byte{0x21, 0xFE}, gifSubBlocks([]byte("SECRET-COMMENT "+string(bytes.Repeat([]byte("x"), 300))))...)
	xmp := append([]byte{0x21, 0xFF, 11}, "XMP DataXMP"...)
	xmp = append(xmp, gifSubBlocks([]byte("<x:xmpmeta>SECRET-XMP</x:xmpmeta>"))...)
	out := append([]byte(nil), plain[:start]...)
	out = append(out, comment...)
	out = append(out, xmp...)
	out = append(out, plain[start:len(plain)-1]...)
	out = append(out, comment...)
	return append(out, 0x3B)
}

func stripGIF(t testing.TB, in []byte, chunk int) []byte {
	t.Helper()
	var out bytes.Buffer
	writeInChunks(t, newGIFStripper(&out), in, chunk)
	return out.Bytes()
}

func TestGIFStripper(t *testing.T) {
	in := metadataGIF(t)
	out := stripGIF(t, in, len(in))
	for _, chunk := range []int{1, 2, 3, 7, 13, 256, 4096} {
		if got := stripGIF(t, in, chunk); !bytes.Equal(got, out) {
			t.Fatalf("chunks of %d give a different result", chunk)
		}
	}
	for _, secret := range []string{"SECRET-COMMENT", "SECRET-XMP", "XMP DataXMP"} {
		if bytes.Contains(out, []byte(secret)) {
			t.Errorf("stripped GIF still contains %q", secret)
		}
	}
	if !bytes.Contains(out, []byte("NETSCAPE2.0")) {
		t.Error("stripped GIF lost its looping extension")
	}
	want, err := gif.DecodeAll(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	got, err := gif.DecodeAll(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("stripped GIF does not decode: %v", err)
	}
	if len(got.Image) != len(want.Image) || got.LoopCount != want.LoopCount {
		t.Fatalf("%d frames, loop count %d; want %d, %d", len(got.Image), got.LoopCount, len(want.Image), want.LoopCount)
	}
	for i := range want.Image {
		if !bytes.Equal(got.Image[i].Pix, want.Image[i].Pix) {
			t.Errorf("frame %d changed", i)
		}
	}
}

func TestGIFStripperPassesOtherFiles(t *testing.T) {
	for _, in := range [][]byte{
		nil, []byte("GIF8"), []byte("GIF90a and more bytes"), []byte("\x89PNG\r\n\x1a\n...."),
		[]byte("GIF89a\x01\x00\x01\x00\x00\x00\x00"),          // a screen descriptor and nothing else
		[]byte("GIF89a\x01\x00\x01\x00\x00\x00\x00\x99 junk"), // not a block: the rest is kept
	} {
		for _, chunk := range []int{1, 1000} {
			if got := stripGIF(t, in, chunk); !bytes.Equal(got, in) {
				t.Errorf("%q (chunks of %d): got %q", in, chunk, got)
			}
		}
	}
}

// Whatever the input, the stripper never panics, never grows it and gives
// the same output however the input is split into writes.
func FuzzGIFStripper(f *testing.F) {
	f.Add(metadataGIF(f), uint8(7))
	f.Add([]byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff\x21\xfe\x01x\x00\x3b"), uint8(1))
	f.Fuzz(func(t *testing.T, in []byte, split uint8) {
		whole := stripGIF(t, in, len(in)+1)
		if len(whole) > len(in) {
			t.Fatalf("%d bytes in, %d out", len(in), len(whole))
		}
		if got := stripGIF(t, in, int(split)+1); !bytes.Equal(got, whole) {
			t.Fatalf("writes of %d bytes give a different result", int(split)+1)
		}
	})
}
