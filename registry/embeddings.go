package registry

import (
	"encoding/binary"
	"fmt"
	"math"
)

// EncodeVector returns v as consecutive little-endian IEEE 754 float32s,
// the compact form in which stores keep the finder's tool embeddings (a
// 384-dimension vector takes 1,536 bytes, a third of its JSON).
func EncodeVector(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

// DecodeVector is the inverse of EncodeVector. A length that is not a
// multiple of four is a damaged value and an error.
func DecodeVector(b []byte) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("decode vector: %d bytes is not a whole number of float32s", len(b))
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}
