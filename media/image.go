package media

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	_ "image/gif" // decoders for image.DecodeConfig and image.Decode
	"image/jpeg"
	_ "image/png"
	"io"

	xdraw "golang.org/x/image/draw"
	_ "golang.org/x/image/webp"
)

// imageTypes are the sniffed content types that get a thumbnail, with the
// image package's format name for each.
var imageTypes = map[string]string{
	"image/jpeg": "jpeg",
	"image/png":  "png",
	"image/gif":  "gif",
	"image/webp": "webp",
}

// Thumbnail limits: longest side, and the size target the quality (then the
// dimensions) are lowered to meet.
const (
	thumbSide     = 128
	thumbMaxBytes = 5 * 1024
)

// checkImage reads only the header of an image and refuses dimensions that
// would make decoding it exhaust memory (a decompression bomb).
func checkImage(r io.Reader, wantFormat string, maxPixels int64, maxSide int) (image.Config, error) {
	cfg, format, err := image.DecodeConfig(r)
	if err != nil {
		return image.Config{}, fmt.Errorf("%w: %v", ErrBadImage, err)
	}
	if format != wantFormat {
		return image.Config{}, fmt.Errorf("%w: header says %s, content sniffed as %s", ErrBadImage, format, wantFormat)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return image.Config{}, fmt.Errorf("%w: %dx%d", ErrBadImage, cfg.Width, cfg.Height)
	}
	if cfg.Width > maxSide || cfg.Height > maxSide || int64(cfg.Width)*int64(cfg.Height) > maxPixels {
		return image.Config{}, fmt.Errorf("%w: %dx%d pixels, the limit is %d pixels and %d per side",
			ErrImageTooLarge, cfg.Width, cfg.Height, maxPixels, maxSide)
	}
	return cfg, nil
}

// makeThumbnail decodes an image whose header checkImage accepted and
// returns a JPEG of at most thumbMaxBytes whose longest side is at most
// thumbSide, turned upright by the EXIF orientation. Re-encoding drops all
// metadata of the original.
func makeThumbnail(r io.Reader, orientation int) ([]byte, error) {
	src, _, err := image.Decode(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadImage, err)
	}
	for _, side := range []int{thumbSide, 96, 64, 48} {
		small := orient(scale(src, side), orientation)
		for _, q := range []int{80, 70, 60, 50, 40, 30} {
			var buf bytes.Buffer
			if err := jpeg.Encode(&buf, small, &jpeg.Options{Quality: q}); err != nil {
				return nil, fmt.Errorf("media: encode thumbnail: %w", err)
			}
			if buf.Len() <= thumbMaxBytes {
				return buf.Bytes(), nil
			}
		}
	}
	return nil, fmt.Errorf("media: thumbnail does not fit in %d bytes", thumbMaxBytes)
}

// scale fits src into side x side (never enlarging), on white so that
// transparent pixels do not turn black in the JPEG.
func scale(src image.Image, side int) *image.RGBA {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	if w > side || h > side {
		if w >= h {
			w, h = side, max(1, h*side/b.Dx())
		} else {
			w, h = max(1, w*side/b.Dy()), side
		}
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(dst, dst.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	xdraw.BiLinear.Scale(dst, dst.Bounds(), src, b, xdraw.Over, nil)
	return dst
}

// orient applies an EXIF orientation (1-8) to img.
func orient(img *image.RGBA, o int) *image.RGBA {
	if o < 2 || o > 8 {
		return img
	}
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var dx, dy int
			switch o {
			case 2: // mirrored
				dx, dy = w-1-x, y
			case 3: // rotated 180
				dx, dy = w-1-x, h-1-y
			case 4: // mirrored vertically
				dx, dy = x, h-1-y
			case 5: // transposed
				dx, dy = y, x
			case 6: // rotated 90 clockwise
				dx, dy = h-1-y, x
			case 7: // transversed
				dx, dy = h-1-y, w-1-x
			case 8: // rotated 90 counter-clockwise
				dx, dy = y, w-1-x
			}
			dst.SetRGBA(dx, dy, img.RGBAAt(x, y))
		}
	}
	return dst
}

// jpegOrientation returns the EXIF orientation tag (1-8) of a JPEG whose
// first bytes are head, or 1 when there is none or it cannot be parsed.
// It walks the JPEG markers up to the first scan and parses the TIFF
// structure of an APP1 "Exif" segment; every offset is bounds-checked,
// since the bytes come from the client.
func jpegOrientation(head []byte) int {
	if len(head) < 4 || head[0] != 0xFF || head[1] != 0xD8 {
		return 1
	}
	i := 2
	for i+4 <= len(head) {
		if head[i] != 0xFF {
			return 1
		}
		marker := head[i+1]
		if marker == 0xFF { // fill byte
			i++
			continue
		}
		if marker == 0xDA || marker == 0xD9 { // start of scan, end of image
			return 1
		}
		segLen := int(binary.BigEndian.Uint16(head[i+2:]))
		if segLen < 2 || i+2+segLen > len(head) {
			return 1
		}
		seg := head[i+4 : i+2+segLen]
		if marker == 0xE1 && len(seg) > 6 && string(seg[:6]) == "Exif\x00\x00" {
			if o := tiffOrientation(seg[6:]); o != 0 {
				return o
			}
		}
		i += 2 + segLen
	}
	return 1
}

// tiffOrientation reads tag 0x0112 from IFD0 of a TIFF structure; 0 if absent.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 0
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0
	}
	if bo.Uint16(t[2:]) != 42 {
		return 0
	}
	ifd := int64(bo.Uint32(t[4:]))
	if ifd < 8 || ifd+2 > int64(len(t)) {
		return 0
	}
	n := int64(bo.Uint16(t[ifd:]))
	for k := int64(0); k < n; k++ {
		e := ifd + 2 + 12*k
		if e+12 > int64(len(t)) {
			return 0
		}
		if bo.Uint16(t[e:]) != 0x0112 {
			continue
		}
		typ, count := bo.Uint16(t[e+2:]), bo.Uint32(t[e+4:])
		if typ != 3 || count != 1 { // SHORT, one value, stored inline
			return 0
		}
		if o := int(bo.Uint16(t[e+8:])); o >= 1 && o <= 8 {
			return o
		}
		return 0
	}
	return 0
}
