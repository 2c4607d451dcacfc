package gateway

import (
	"bufio"
	"io"
	"strings"
	"testing"
)

func TestToolsListFilter(t *testing.T) {
	keepA := func(name string) bool { return name == "a" }
	const listAB = `{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"a","inputSchema":{"type":"object"}},{"name":"b"}],"nextCursor":"x"}}`
	const listA = `{"id":7,"jsonrpc":"2.0","result":{"nextCursor":"x","tools":[{"name":"a","inputSchema":{"type":"object"}}]}}`
	for _, tc := range []struct {
		name string
		sse  bool
		in   string
		want string
	}{
		{name: "JSON result filtered", in: listAB, want: listA},
		// Whatever the request's ids: upstreams write ids back in their own
		// form, and may answer on another request's stream.
		{name: "ids written back in another form", in: strings.Replace(listAB, `"id":7`, `"id":1`, 1), want: strings.Replace(listA, `"id":7`, `"id":1`, 1)},
		{name: "escaped member name", in: `{"jsonrpc":"2.0","id":7,"result":{"tool\u0073":[{"name":"b"}]}}`, want: `{"id":7,"jsonrpc":"2.0","result":{"tools":[]}}`},
		{name: "nothing to drop: bytes unchanged", in: `{"jsonrpc":"2.0","id":7, "result":{"tools":[{"name":"a"}]}}`, want: `{"jsonrpc":"2.0","id":7, "result":{"tools":[{"name":"a"}]}}`},
		{name: "tools/call result untouched", in: `{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"b"}]}}`, want: `{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"b"}]}}`},
		{name: "a request carrying tools untouched", in: `{"jsonrpc":"2.0","id":7,"method":"x","result":{"tools":[{"name":"b"}]}}`, want: `{"jsonrpc":"2.0","id":7,"method":"x","result":{"tools":[{"name":"b"}]}}`},
		{name: "not JSON passes", in: `<html>bad gateway</html>`, want: `<html>bad gateway</html>`},
		{name: "batch", in: `[{"jsonrpc":"2.0","id":6,"result":{}},` + listAB + `]`,
			want: `[{"jsonrpc":"2.0","id":6,"result":{}},` + listA + `]`},
		{name: "string id", in: strings.Replace(listAB, `"id":7`, `"id":"q"`, 1), want: strings.Replace(listA, `"id":7`, `"id":"q"`, 1)},
		{name: "unnamed tools are dropped", in: `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"title":"no name"},{"name":"a"}]}}`, want: `{"id":1,"jsonrpc":"2.0","result":{"tools":[{"name":"a"}]}}`},

		{name: "SSE event filtered, fields kept", sse: true,
			in:   "id: 42\nevent: message\ndata: " + listAB + "\n\n",
			want: "id: 42\nevent: message\ndata: " + listA + "\n\n"},
		{name: "SSE with CRLF and several events", sse: true,
			in:   ": keepalive\r\n\r\nevent: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\r\n\r\nevent: message\r\ndata: " + listAB + "\r\n\r\n",
			want: ": keepalive\r\n\r\nevent: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\r\n\r\nevent: message\ndata: " + listA + "\n\n"},
		{name: "SSE data split over lines", sse: true,
			in:   "data: {\"jsonrpc\":\"2.0\",\"id\":7,\n" + "data: \"result\":{\"tools\":[{\"name\":\"b\"}]}}\n\n",
			want: "data: {\"id\":7,\"jsonrpc\":\"2.0\",\"result\":{\"tools\":[]}}\n\n"},
		{name: "SSE with lone CR line endings", sse: true,
			in:   "event: message\rdata: " + listAB + "\r\r",
			want: "event: message\ndata: " + listA + "\n\n"},
		{name: "SSE partial event at the end passes", sse: true, in: "data: {\"jsonrpc\"", want: "data: {\"jsonrpc\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &toolsFilter{keep: keepA}
			var got []byte
			var err error
			if tc.sse {
				got, err = io.ReadAll(&sseFilter{src: bufio.NewReader(strings.NewReader(tc.in)), f: f})
			} else {
				got, err = f.filterJSON(strings.NewReader(tc.in))
			}
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if string(got) != tc.want {
				t.Fatalf("filtered\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestToolsListFilterStreamsEventByEvent checks that the filter hands on
// each event as soon as it is complete, not at the end of the stream.
func TestToolsListFilterStreamsEventByEvent(t *testing.T) {
	pr, pw := io.Pipe()
	f := &sseFilter{src: bufio.NewReader(pr), f: &toolsFilter{keep: func(string) bool { return false }}}
	go func() {
		_, _ = pw.Write([]byte("event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n"))
	}()
	buf := make([]byte, 256)
	n, err := f.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "notifications/progress") {
		t.Fatalf("first event not passed on before the stream ended: %q %v", buf[:n], err)
	}
	pw.Close()
}
