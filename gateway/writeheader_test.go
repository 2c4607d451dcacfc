package gateway

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// headerFrom decodes fuzz bytes into a header: NUL separates fields, the
// first '=' of a field separates its name from its value; names repeat.
func headerFrom(b []byte) http.Header {
	h := http.Header{}
	for _, f := range strings.Split(string(b), "\x00") {
		k, v, _ := strings.Cut(f, "=")
		h[k] = append(h[k], v)
	}
	return h
}

func sameHeaderBytes(t *testing.T, h http.Header) {
	t.Helper()
	var want bytes.Buffer
	if err := h.Write(&want); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	w := bufio.NewWriter(&got)
	writeHeader(w, h)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Fatalf("writeHeader(%q):\n got  %q\n want %q", h, got.String(), want.String())
	}
}

func TestWriteHeaderMatchesNetHTTP(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    http.Header
	}{
		{"empty", http.Header{}},
		{"response of a relayed call", http.Header{
			"Content-Type": {"application/json"}, "Mcp-Session-Id": {"gw1.abc"}, "X-Request-Id": {"0123abcd"},
			"Date": {"Thu, 26 Nov 2026 10:00:00 GMT"}, "Content-Length": {"42"}}},
		{"repeated values keep their order", http.Header{"Set-Cookie": {"b=2", "a=1"}, "Vary": {"Origin"}}},
		{"newlines become spaces", http.Header{"X-Evil": {"a\r\nInjected: yes", "\nb\r"}}},
		{"values are trimmed", http.Header{"X-Pad": {" \t v \t ", "\r\n", ""}}},
		{"invalid names are dropped", http.Header{"Bad Name": {"x"}, "Bad:Name": {"y"}, "": {"z"}, "Caf\xc3\xa9": {"w"}, "Ok": {"1"}}},
		{"lower-case and odd names sort as bytes", http.Header{"b": {"1"}, "A": {"2"}, "a-b": {"3"}, "A_b": {"4"}, "~": {"5"}}},
	} {
		t.Run(tc.name, func(t *testing.T) { sameHeaderBytes(t, tc.h) })
	}
	many := http.Header{}
	for i := range 40 { // more names than the fast path sorts itself
		many[strings.Repeat("X", i+1)] = []string{"v"}
	}
	t.Run("many names", func(t *testing.T) { sameHeaderBytes(t, many) })
}

func FuzzWriteHeader(f *testing.F) {
	f.Add([]byte("Content-Type=application/json\x00Mcp-Session-Id=s\x00Set-Cookie=a\x00Set-Cookie=b"))
	f.Add([]byte("X= a\r\nb \x00Bad Name=x\x00=y\x00\t=\x00Z=\xff"))
	f.Fuzz(func(t *testing.T, b []byte) { sameHeaderBytes(t, headerFrom(b)) })
}
