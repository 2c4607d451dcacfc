package gateway

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// decodeRPC is the reference: the same reading with encoding/json.
func decodeRPC(body []byte) ([]rpcMessage, error) {
	body = bytes.TrimSpace(body)
	var msgs []rpcMessage
	if len(body) > 0 && body[0] == '[' {
		if err := json.Unmarshal(body, &msgs); err != nil {
			return nil, err
		}
	} else {
		var m rpcMessage
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, err
		}
		msgs = []rpcMessage{m}
	}
	return msgs, nil
}

var rpcSamples = []string{
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi","name":"not me"}}}`,
	`{"jsonrpc":"2.0","id":"a\"b","method":"tools/call","params":{"arguments":{"name":"x"},"name":"LambdaUsingSDK___check_warranty_status","_meta":{"progressToken":1}}}`,
	` { "id" : null , "jsonrpc" : "2.0", "method" : "ping" } `,
	`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
	`{"jsonrpc":"2.0","id":5,"result":{"content":[{"type":"text","text":"}]{["}]}}`,
	`{"jsonrpc":"2.0","id":6,"error":{"code":-1,"message":"no"}}`,
	`[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","id":2,"method":"b","params":{"name":"t\u00e9"}}]`,
	`{"jsonrpc":"2.0","id":7,"method":"tools\/call","params":{"name":"e\\cho"}}`,
	`{"jsonrpc":"2.0","id":9.5e3,"method":"x","params":{"nested":{"name":"deep"},"name":"top"}}`,
	// encoding/json matches member names case-insensitively, Unicode folding included.
	`{"JSONRPC":"2.0","Id":3,"METHOD":"tools/call","Params":{"NAME":"up"}}`,
	`{"jsonrpc":"2.0","id":3,"method":"tools/call","paramſ":{"name":"long s"}}`,
	// Bytes that are not UTF-8 decode to U+FFFD.
	"{\"jsonrpc\":\"2.0\",\"method\":\"\xfa\",\"params\":{\"name\":\"t\xff\"}}",
}

// TestScanRPCRefusesDuplicates checks that a member the relay reads may
// appear only once, in any spelling encoding/json would match.
func TestScanRPCRefusesDuplicates(t *testing.T) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","METHOD":"tools/call"}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","Name":"b"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"paramſ":{"name":"b"}}`,
		`{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}`,
		`{"jsonrpc":"2.0","jsonrpc":"2.0","method":"ping"}`,
		`[{"jsonrpc":"2.0","method":"ping"},{"jsonrpc":"2.0","id":1,"result":{},"Result":{}}]`,
	} {
		if msgs, err := scanRPC([]byte(s)); err == nil || !strings.Contains(err.Error(), "duplicate") {
			t.Errorf("scanRPC(%s) = %+v, %v; want a duplicate member error", s, msgs, err)
		}
	}
}

func TestScanRPCMatchesDecoding(t *testing.T) {
	for _, s := range rpcSamples {
		t.Run(s, func(t *testing.T) {
			want, werr := decodeRPC([]byte(s))
			got, gerr := scanRPC([]byte(s))
			if werr != nil {
				t.Fatalf("reference failed: %v", werr)
			}
			if gerr != nil {
				t.Fatalf("scanRPC: %v", gerr)
			}
			for i := range want { // compare raw ids compacted
				want[i].ID, got[i].ID = compactJSON(want[i].ID), compactJSON(got[i].ID)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("scanRPC = %+v\nwant      %+v", got, want)
			}
		})
	}
}

// JSON-RPC allows positional (array) params; MCP does not use them, but a
// valid message must still pass the relay rather than be refused as a parse
// error.
func TestScanRPCArrayParams(t *testing.T) {
	msgs, err := scanRPC([]byte(`{"jsonrpc":"2.0","id":8,"method":"x/y","params":[1,2,{"name":"x"}]}`))
	if err != nil || len(msgs) != 1 || msgs[0].Method != "x/y" || msgs[0].Params.Name != "" {
		t.Fatalf("got %+v, %v", msgs, err)
	}
}

// FuzzScanRPC checks that on any valid JSON the scanner agrees with
// encoding/json about method, id and tool name, and never panics.
func FuzzScanRPC(f *testing.F) {
	for _, s := range rpcSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !json.Valid(body) {
			return
		}
		got, gerr := scanRPC(body)
		want, werr := decodeRPC(body)
		if werr != nil || gerr != nil {
			return // shapes encoding/json refuses (wrong types) may differ in message only
		}
		if len(got) != len(want) {
			t.Fatalf("%d messages, want %d", len(got), len(want))
		}
		for i := range want {
			if got[i].Method != want[i].Method || got[i].Params.Name != want[i].Params.Name || !bytes.Equal(compactJSON(got[i].ID), compactJSON(want[i].ID)) {
				t.Fatalf("message %d: got %+v want %+v", i, got[i], want[i])
			}
		}
	})
}

func BenchmarkParseRPC(b *testing.B) {
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello world","n":[1,2,3]},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"b","version":"1"}}}}`)
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			_, _ = decodeRPC(body)
		}
	})
	b.Run("parseRPC (valid+scan)", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			_, _ = parseRPC(body)
		}
	})
}

func compactJSON(b []byte) []byte {
	if b == nil {
		return nil
	}
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return b
	}
	return buf.Bytes()
}

// validJSONCases are edge cases of the JSON grammar; each must get
// json.Valid's answer.
var validJSONCases = []string{
	``, ` `, `0`, `-0`, `-`, `01`, `1.`, `1.5`, `.5`, `1e`, `1e+`, `1E-7`, `1e07`, `-1.0e+10`, `2a`,
	`true`, `tru`, `truex`, `false`, `null`, `nul`, `nullnull`, `"`, `""`, `"\"`, `"\\"`, `"\u00e9"`,
	`"\u00g9"`, `"\u00e"`, `"\x"`, `"a` + "\x01" + `"`, "\"\xff\xfe\"", "\"\t\"", `"\/"`,
	`{}`, `{ }`, `{"a":1}`, `{"a":1,}`, `{"a"1}`, `{a:1}`, `{"a":}`, `{,}`, `{"a":1 "b":2}`, `{"a":[1,{"b":null}]}`,
	`[]`, `[ ]`, `[1,]`, `[,1]`, `[1 2]`, `[[[]]]`, `[{]}`, `{"a":]`, "[1,\r\n\t2]", `[1]]`, `[1] x`,
	"\v1", "1\f", ` {"jsonrpc":"2.0"} `,
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000),
	strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001),
}

func TestValidJSONMatchesEncodingJSON(t *testing.T) {
	for _, s := range append(validJSONCases, rpcSamples...) {
		name := s
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			if got, want := validJSON([]byte(s)), json.Valid([]byte(s)); got != want {
				t.Fatalf("validJSON(%q) = %v, json.Valid says %v", s, got, want)
			}
		})
	}
}

// FuzzValidJSON holds validJSON to json.Valid on any input.
func FuzzValidJSON(f *testing.F) {
	for _, s := range append(validJSONCases[:len(validJSONCases)-4], rpcSamples...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid says %v", b, got, want)
		}
	})
}
