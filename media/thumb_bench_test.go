package media

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"testing"
)

// BenchmarkThumbnail is the image work of an upload alone: decode a
// 12-megapixel JPEG, scale, orient and encode the <= 5 KB thumbnail.
func BenchmarkThumbnail(b *testing.B) {
	img := image.NewRGBA(image.Rect(0, 0, 4000, 3000))
	for y := 0; y < 3000; y++ {
		for x := 0; x < 4000; x++ {
			n := uint8(rand.Uint32() >> 27)
			img.SetRGBA(x, y, color.RGBA{uint8(x/16) + n, uint8(y/12) + n, 100 + n, 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		thumb, err := makeThumbnail(bytes.NewReader(buf.Bytes()), 6)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(thumb)), "thumb-bytes")
	}
	b.ReportMetric(float64(buf.Len())/(1<<20), "MB/photo")
}
