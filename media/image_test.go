package media

import (
	"encoding/binary"
	"testing"
)

func exifJPEG(order string, orientation uint16) []byte {
	var bo binary.ByteOrder = binary.BigEndian
	if order == "II" {
		bo = binary.LittleEndian
	}
	tiff := make([]byte, 26)
	copy(tiff, order)
	bo.PutUint16(tiff[2:], 42)
	bo.PutUint32(tiff[4:], 8)
	bo.PutUint16(tiff[8:], 1)       // one entry
	bo.PutUint16(tiff[10:], 0x0112) // orientation
	bo.PutUint16(tiff[12:], 3)      // SHORT
	bo.PutUint32(tiff[14:], 1)      // count
	bo.PutUint16(tiff[18:], orientation)
	seg := append([]byte("Exif\x00\x00"), tiff...)
	out := []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 'J', 'F'} // an APP0 first
	out = append(out, 0xFF, 0xE1, byte((len(seg)+2)>>8), byte(len(seg)+2))
	out = append(out, seg...)
	return append(out, 0xFF, 0xDA, 0, 2)
}

func TestJPEGOrientation(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want int
	}{
		{"big endian 6", exifJPEG("MM", 6), 6},
		{"little endian 8", exifJPEG("II", 8), 8},
		{"out of range", exifJPEG("MM", 9), 1},
		{"no exif", []byte{0xFF, 0xD8, 0xFF, 0xDA, 0, 2}, 1},
		{"not a jpeg", []byte("GIF89a"), 1},
		{"empty", nil, 1},
		{"truncated segment", exifJPEG("MM", 6)[:20], 1},
		{"segment length past the end", []byte{0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF, 'E'}, 1},
	}
	for _, tt := range tests {
		if got := jpegOrientation(tt.in); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
}

// FuzzJPEGOrientation: the parser reads client bytes and must never panic.
func FuzzJPEGOrientation(f *testing.F) {
	f.Add(exifJPEG("MM", 6))
	f.Add(exifJPEG("II", 3))
	f.Add([]byte{0xFF, 0xD8})
	f.Fuzz(func(t *testing.T, b []byte) {
		if o := jpegOrientation(b); o < 1 || o > 8 {
			t.Fatalf("orientation %d", o)
		}
	})
}
