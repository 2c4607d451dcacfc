package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
)

// A large meta tool result is written into the response by the gateway
// rather than encoded by mcp-go. mcp-go encodes a CallToolResult through
// nested json.Marshalers, and encoding/json validates and compacts every
// Marshaler's output again at each level: list_services at 10,000 services
// (3 MB of JSON, twice: as text and as structuredContent) spent 130 ms of its
// 160 ms in that. So the tool hands mcp-go a result whose text and
// structuredContent are placeholder strings, and the response writer of the
// meta request writes the JSON in their place: the bytes on the wire are
// those mcp-go would have written, encoded once.

// payloadMin is the size from which a result is written in place; smaller
// ones are not worth the detour.
const payloadMin = 32 << 10

// payloadPrefix starts every placeholder; the rest is random, so no other
// content can be mistaken for one.
const payloadPrefix = `"mcpgw-payload-`

// payloadTokenLen is the length of a quoted placeholder: the prefix, 32 hex
// digits and the closing quote.
const payloadTokenLen = len(payloadPrefix) + 32 + 1

// payloads are the results of one meta request waiting to be written, by
// quoted placeholder.
type payloads struct {
	mu sync.Mutex
	m  map[string]payload
}

// payload is what replaces a placeholder: b, and for a whole result (see
// resultInPlace) also the bytes around the placeholder that encode the
// stand-in result, before and after.
type payload struct {
	b, before, after []byte
}

type payloadsKey struct{}

func withPayloads(ctx context.Context, p *payloads) context.Context {
	return context.WithValue(ctx, payloadsKey{}, p)
}

// add keeps b to be written in place of the placeholder it returns (quoted,
// as it appears in the encoded response).
func (p *payloads) add(b []byte) string {
	token := newPlaceholder()
	p.put(token, payload{b: b})
	return token
}

// newPlaceholder returns a fresh placeholder, quoted.
func newPlaceholder() string {
	var id [16]byte
	_, _ = rand.Read(id[:])
	return payloadPrefix + hex.EncodeToString(id[:]) + `"`
}

func (p *payloads) put(token string, pl payload) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]payload{}
	}
	p.m[token] = pl
}

// resultInPlace returns the stand-in for a tool result already encoded
// (raw, an upstream's result for invoke_tool): a result holding a
// placeholder, which the meta response writer replaces, with the stand-in's
// own encoding around it, by raw. So the caller gets the upstream's bytes,
// none of them decoded and encoded again. It returns nil when ctx is not a
// meta request's.
func resultInPlace(ctx context.Context, raw []byte) *mcp.CallToolResult {
	p, _ := ctx.Value(payloadsKey{}).(*payloads)
	if p == nil {
		return nil
	}
	enc := standInEncoding()
	if enc.before == nil {
		return nil
	}
	token := newPlaceholder()
	p.put(token, payload{b: raw, before: enc.before, after: enc.after})
	return standIn(token)
}

// standIn is the stand-in result holding the quoted placeholder token.
func standIn(token string) *mcp.CallToolResult {
	res := mcp.NewToolResultText(token[1 : len(token)-1])
	// For a 2026-07-28 caller, mcp-go's server stamps a result with a
	// resultType and its server's identity unless it has them: given both,
	// the stand-in is encoded the same for every caller.
	res.ResultType = mcp.ResultTypeComplete
	res.Meta = &mcp.Meta{}
	res.Meta.SetServerInfo(mcp.Implementation{Name: "mcpgw"})
	return res
}

// standInEncoding is how a stand-in result encodes around its placeholder.
// Placeholders differ only in hex digits, which JSON leaves as they are, so
// it is the same for all and encoded once (each invoke_tool call encoding it
// again cost 4 % of the gateway's CPU).
// before is nil if it could not be encoded.
var standInEncoding = sync.OnceValue(func() (enc struct{ before, after []byte }) {
	token := payloadPrefix + strings.Repeat("0", payloadTokenLen-len(payloadPrefix)-1) + `"`
	b, err := json.Marshal(standIn(token))
	i := bytes.Index(b, []byte(token))
	if err != nil || i < 0 {
		return enc
	}
	enc.before, enc.after = b[:i:i], b[i+len(token):len(b):len(b)]
	return enc
})

// take removes and returns the payload of token.
func (p *payloads) take(token []byte) (payload, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pl, ok := p.m[string(token)]
	if ok {
		delete(p.m, string(token))
	}
	return pl, ok
}

func (p *payloads) pending() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m) > 0
}

// jsonResultCtx is jsonResult for the meta tools whose answers grow with the
// registry: a large answer is written in place by the meta request's
// response writer (see metaWriter). The result is the same: one text
// content holding the JSON, and the same object as structuredContent.
func jsonResultCtx(ctx context.Context, v any) (*mcp.CallToolResult, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsonBytesResult(ctx, b, nil), nil
}

// jsonBytesResult is jsonResultCtx for JSON already encoded. textLit, when
// not nil, is b as a JSON string literal (see jsonPair), which spares
// escaping b here.
func jsonBytesResult(ctx context.Context, b, textLit []byte) *mcp.CallToolResult {
	p, _ := ctx.Value(payloadsKey{}).(*payloads)
	if p == nil || len(b) < payloadMin {
		return mcp.NewToolResultStructured(json.RawMessage(b), string(b))
	}
	if textLit == nil {
		textLit = quoteJSON(b)
	}
	text := p.add(textLit)
	structured := p.add(b)
	// The text placeholder is given unquoted: mcp-go quotes the string.
	return mcp.NewToolResultStructured(json.RawMessage(structured), text[1:len(text)-1])
}

// quoteJSON returns b as a JSON string literal. b is JSON as json.Marshal
// writes it (no control characters; <, >, &, U+2028 and U+2029 already
// escaped), so only quotes and backslashes need escaping.
func quoteJSON(b []byte) []byte {
	// JSON has a quote every few bytes: count them, then fill the result
	// by index, which beats searching and appending.
	n := 0
	for _, c := range b {
		if c == '"' || c == '\\' {
			n++
		}
	}
	out := make([]byte, len(b)+n+2)
	out[0] = '"'
	j := 1
	for _, c := range b {
		if c == '"' || c == '\\' {
			out[j] = '\\'
			j++
		}
		out[j] = c
		j++
	}
	out[j] = '"'
	return out
}

// metaHandler serves the meta MCP server with what its tools need of the
// HTTP exchange: the payloads written in place (above) and the progress
// accounting of the caller's session (see progressLedger).
type metaHandler struct {
	mcp     http.Handler
	ledgers ledgers
}

func (h *metaHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	pl := &payloads{}
	led, release := h.ledgers.acquire(r.Header.Get("Mcp-Session-Id"))
	defer release()
	ctx := withLedger(withPayloads(r.Context(), pl), led)
	h.mcp.ServeHTTP(&metaWriter{ResponseWriter: w, p: pl, led: led}, r.WithContext(ctx))
}

// metaWriter writes a meta response, putting each waiting payload in place
// of its placeholder, and counts the progress notifications it writes for
// the session's ledger. mcp-go writes a response (a JSON body, or one SSE
// event) in one Write, so a placeholder is never split between two.
type metaWriter struct {
	http.ResponseWriter
	p   *payloads
	led *progressLedger
}

func (w *metaWriter) Write(b []byte) (int, error) {
	if w.led.waiting() {
		w.led.wrote(bytes.Count(b, []byte(progressMethodJSON)))
	}
	if !w.p.pending() {
		return w.ResponseWriter.Write(b)
	}
	n := len(b)
	for {
		i := bytes.Index(b, []byte(payloadPrefix))
		if i < 0 || len(b)-i < payloadTokenLen {
			break
		}
		pl, ok := w.p.take(b[i : i+payloadTokenLen])
		if !ok {
			// Not one of ours: write through its prefix and look on.
			if _, err := w.ResponseWriter.Write(b[:i+len(payloadPrefix)]); err != nil {
				return 0, err
			}
			b = b[i+len(payloadPrefix):]
			continue
		}
		start, end := i, i+payloadTokenLen
		if pl.before != nil || pl.after != nil {
			// A whole result: the stand-in's encoding around the
			// placeholder goes too. mcp-go encodes the stand-in as
			// resultInPlace did, so it is there; should it not be, the
			// caller gets the stand-in with this text instead of garbled
			// JSON.
			start, end = i-len(pl.before), end+len(pl.after)
			if start < 0 || end > len(b) || !bytes.Equal(b[start:i], pl.before) || !bytes.Equal(b[i+payloadTokenLen:end], pl.after) {
				start, end = i, i+payloadTokenLen
				pl.b = []byte(`"mcpgw: the upstream's result could not be written in place; please report this"`)
			}
		}
		if _, err := w.ResponseWriter.Write(b[:start]); err != nil {
			return 0, err
		}
		if _, err := w.ResponseWriter.Write(pl.b); err != nil {
			return 0, err
		}
		b = b[end:]
	}
	if _, err := w.ResponseWriter.Write(b); err != nil {
		return 0, err
	}
	return n, nil
}

func (w *metaWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *metaWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
