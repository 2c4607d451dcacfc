package httphead

import (
	"bytes"
	"net/http"
	"testing"
)

func BenchmarkParseRequest(b *testing.B) {
	head := []byte(requestSeeds[0])
	b.ReportAllocs()
	for b.Loop() {
		if req, _ := ParseRequest(head, bytes.NewReader(nil)); req == nil {
			b.Fatal("not handled")
		}
	}
}

func BenchmarkParseResponse(b *testing.B) {
	head := []byte(responseSeeds[0])
	req := &http.Request{Method: http.MethodPost}
	b.ReportAllocs()
	for b.Loop() {
		if resp, _ := ParseResponse(head, req, bytes.NewReader(nil)); resp == nil {
			b.Fatal("not handled")
		}
	}
}
