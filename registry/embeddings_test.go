package registry

import (
	"math"
	"testing"
)

func TestVectorEncoding(t *testing.T) {
	tests := []struct {
		name string
		v    []float32
		want []byte
	}{
		{"empty", []float32{}, []byte{}},
		{"one", []float32{1}, []byte{0x00, 0x00, 0x80, 0x3f}},
		{"little endian", []float32{-2, 0.5}, []byte{0x00, 0x00, 0x00, 0xc0, 0x00, 0x00, 0x00, 0x3f}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := EncodeVector(tt.v)
			if string(b) != string(tt.want) {
				t.Fatalf("EncodeVector(%v) = % x, want % x", tt.v, b, tt.want)
			}
			v, err := DecodeVector(b)
			if err != nil || len(v) != len(tt.v) {
				t.Fatalf("DecodeVector = %v, %v", v, err)
			}
			for i := range v {
				if math.Float32bits(v[i]) != math.Float32bits(tt.v[i]) {
					t.Fatalf("round trip = %v, want %v", v, tt.v)
				}
			}
		})
	}
	if _, err := DecodeVector([]byte{1, 2, 3}); err == nil {
		t.Error("DecodeVector of 3 bytes succeeded, want an error")
	}
}
