package gateway

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// bufferBeforeChunking is how much of an answer without Content-Length is
// held back to learn its length, as net/http does.
const bufferBeforeChunking = 2048

// ingressResponse is the http.ResponseWriter of the fast loop. The status
// line and headers go out with the first body bytes in one write.
type ingressResponse struct {
	c             *ingressConn
	req           *http.Request
	header        http.Header
	status        int   // 0 until WriteHeader
	headerSent    bool  // status line and headers are in c.bw
	contentLength int64 // declared by the handler, or -1
	written       int64
	chunked       bool
	held          []byte // body held before the header is sent
	pending       []byte // body gathered for the next chunk
	close         bool   // close the connection after this answer
	wantsClose    bool   // the client asked to close (net/http's reading)
	// wants10KeepAlive: an HTTP/1.0 client asked to keep the connection.
	wants10KeepAlive bool
	body             *ingressBody // nil when the request has none
	failedWrite      bool
	// cancel cancels the request's context; the relay uses it for
	// upstream timeouts (see requestCancel).
	cancel context.CancelCauseFunc
}

var (
	_ http.ResponseWriter = (*ingressResponse)(nil)
	_ http.Flusher        = (*ingressResponse)(nil)
)

func (w *ingressResponse) Header() http.Header { return w.header }

func (w *ingressResponse) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// Informational answers go out at once; the final one follows.
		fmt.Fprintf(w.c.bw, "HTTP/1.1 %d %s\r\n", code, http.StatusText(code))
		_ = w.header.Write(w.c.bw)
		_, _ = w.c.bw.WriteString("\r\n")
		_ = w.c.bw.Flush()
		return
	}
	w.status = code
	if cl := firstValue(w.header, "Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			w.contentLength = n
		} else {
			w.header.Del("Content-Length")
		}
	}
}

// bodyAllowed reports whether the answer may carry a body.
func (w *ingressResponse) bodyAllowed() bool {
	return w.req.Method != http.MethodHead && statusAllowsBody(w.status)
}

// statusAllowsBody reports whether an answer with status s may carry a
// body (RFC 9110: not 1xx, 204 or 304).
func statusAllowsBody(s int) bool {
	return !(s >= 100 && s < 200 || s == http.StatusNoContent || s == http.StatusNotModified)
}

func (w *ingressResponse) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.bodyAllowed() {
		if w.req.Method == http.MethodHead && w.status != http.StatusNoContent && w.status != http.StatusNotModified {
			w.written += int64(len(p)) // counted for Content-Length, not sent
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if w.contentLength >= 0 && w.written+int64(len(p)) > w.contentLength {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if !w.headerSent {
		if w.contentLength < 0 && len(w.held)+len(p) <= bufferBeforeChunking {
			w.held = append(w.held, p...)
			return len(p), nil
		}
		w.sendHeader(false)
	}
	return len(p), w.writeBody(p)
}

func (w *ingressResponse) writeBody(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if w.chunked {
		// Small writes gather into one chunk, as net/http's do, so that
		// an answer written piece by piece is not mostly chunk framing.
		if len(w.pending)+len(p) <= chunkSize {
			w.pending = append(w.pending, p...)
			return nil
		}
		if err := w.writeChunk(w.pending); err != nil {
			return err
		}
		w.pending = w.pending[:0]
		if len(p) < chunkSize {
			w.pending = append(w.pending, p...)
			return nil
		}
		return w.writeChunk(p)
	}
	if _, err := w.c.bw.Write(p); err != nil {
		w.failedWrite = true
		return err
	}
	return nil
}

// chunkSize is the most body bytes gathered into one chunk.
const chunkSize = 4096

func (w *ingressResponse) writeChunk(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	bw := w.c.bw
	_, _ = bw.Write(strconv.AppendInt(w.c.scratch[:0], int64(len(p)), 16))
	_, _ = bw.WriteString("\r\n")
	_, _ = bw.Write(p)
	if _, err := bw.WriteString("\r\n"); err != nil {
		w.failedWrite = true
		return err
	}
	return nil
}

// flushChunk sends the gathered bytes as a chunk.
func (w *ingressResponse) flushChunk() {
	if len(w.pending) > 0 {
		_ = w.writeChunk(w.pending)
		w.pending = w.pending[:0]
	}
}

// Flush sends what is written so far, headers included.
func (w *ingressResponse) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headerSent {
		w.sendHeader(false)
	}
	w.flushChunk()
	if err := w.c.bw.Flush(); err != nil {
		w.failedWrite = true
	}
}

// sendHeader writes the status line and headers, then any held body.
// final says the handler has returned, so a held body is the whole body.
// Framing and keep-alive follow net/http's server rule for rule.
func (w *ingressResponse) sendHeader(final bool) {
	w.headerSent = true
	h := w.header
	isHEAD := w.req.Method == http.MethodHead
	statusBody := statusAllowsBody(w.status)
	if statusBody && !isHEAD {
		if _, ok := h["Content-Type"]; !ok && len(w.held) > 0 {
			h.Set("Content-Type", http.DetectContentType(w.held))
		}
	}
	if w.contentLength < 0 && final && statusBody && (!isHEAD || w.written > 0) {
		w.contentLength = w.written // all of it is held (or, for HEAD, counted)
		h.Set("Content-Length", strconv.FormatInt(w.written, 10))
	}
	if !statusBody && (w.status == http.StatusNoContent || w.status == http.StatusNotModified) {
		h.Del("Content-Length")
		h.Del("Transfer-Encoding")
	}
	hasCL := w.contentLength >= 0
	if w.wants10KeepAlive && (isHEAD || hasCL || !statusBody) {
		if _, set := h["Connection"]; !set {
			h.Set("Connection", "keep-alive")
		}
	} else if !w.req.ProtoAtLeast(1, 1) || w.wantsClose {
		w.close = true
	}
	if h.Get("Connection") == "close" || w.c.srv.closing.Load() {
		w.close = true
	}
	if w.body != nil && w.body.expect && !w.body.sawEOF {
		w.close = true // the client may still be sending a body nobody read
	}
	if statusBody && !isHEAD && !hasCL {
		if w.req.ProtoAtLeast(1, 1) {
			w.chunked = true
			h.Set("Transfer-Encoding", "chunked")
		} else {
			w.close = true // an HTTP/1.0 body of unknown length ends with the connection
			h.Del("Transfer-Encoding")
		}
	}
	if w.close && (w.c.srv.closing.Load() || !hasToken(h.Get("Connection"), "close")) {
		h.Del("Connection")
		if w.req.ProtoAtLeast(1, 1) {
			h.Set("Connection", "close")
		}
	}
	if _, ok := h["Date"]; !ok {
		h.Set("Date", httpDate())
	}
	bw := w.c.bw
	_, _ = bw.WriteString("HTTP/1.1 ")
	_, _ = bw.Write(strconv.AppendInt(w.c.scratch[:0], int64(w.status), 10))
	_ = bw.WriteByte(' ')
	_, _ = bw.WriteString(http.StatusText(w.status))
	_, _ = bw.WriteString("\r\n")
	writeHeader(bw, h) // drops invalid names, turns newlines in values into spaces
	_, _ = bw.WriteString("\r\n")
	held := w.held
	w.held = nil
	_ = w.writeBody(held)
}

// finish completes the answer after the handler returned.
func (w *ingressResponse) finish() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headerSent {
		w.sendHeader(true)
	}
	if w.chunked {
		w.flushChunk()
		if _, err := w.c.bw.WriteString("0\r\n\r\n"); err != nil {
			w.failedWrite = true
		}
	}
	if w.bodyAllowed() && w.contentLength >= 0 && w.written < w.contentLength {
		w.close = true // the client waits for bytes that will not come
	}
}

// httpDate is the Date header's value, formatted once a second.
func httpDate() string {
	now := time.Now().Unix()
	if d := dateCache.Load(); d != nil && d.sec == now {
		return d.text
	}
	d := &cachedDate{sec: now, text: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.text
}

type cachedDate struct {
	sec  int64
	text string
}

var dateCache atomic.Pointer[cachedDate]

// writeHeader writes h exactly as net/http's Header.Write does (names in
// sorted order, invalid names dropped, CR and LF in values turned into
// spaces, values trimmed), without its pooled sorter and string replacer:
// those were 2% of a relayed call's CPU. FuzzWriteHeader holds the two to
// the same bytes.
func writeHeader(w *bufio.Writer, h http.Header) {
	var arr [24]string
	if len(h) > len(arr) {
		_ = h.Write(w)
		return
	}
	keys := arr[:0]
	for k := range h {
		keys = append(keys, k)
	}
	// Insertion sort: a response has a handful of headers.
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	for _, k := range keys {
		if !validHeaderName(k) {
			continue
		}
		for _, v := range h[k] {
			_, _ = w.WriteString(k)
			_, _ = w.WriteString(": ")
			writeHeaderValue(w, v)
			_, _ = w.WriteString("\r\n")
		}
	}
}

// writeHeaderValue writes v with CR and LF as spaces, without the spaces
// and tabs at either end.
func writeHeaderValue(w *bufio.Writer, v string) {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
	for len(v) > 0 && isSpace(v[0]) {
		v = v[1:]
	}
	for len(v) > 0 && isSpace(v[len(v)-1]) {
		v = v[:len(v)-1]
	}
	for len(v) > 0 {
		i := strings.IndexAny(v, "\r\n")
		if i < 0 {
			_, _ = w.WriteString(v)
			return
		}
		_, _ = w.WriteString(v[:i])
		_ = w.WriteByte(' ')
		v = v[i+1:]
	}
}
