package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
)

// runHTTPRelay is the floor under an HTTP relay (-floor http): it reads each
// message's head only for its framing (Content-Length or chunked), sends the
// same bytes on, and pairs each client connection with one upstream
// connection of its own, so it builds nothing per call and needs no pool.
// It checks nothing and understands no MCP: what it adds to a call is what
// any relay that reads HTTP/1.1 messages costs at least on this machine,
// to set against the TCP copy (which does not even read them) and mcpgw.
func runHTTPRelay(args []string) {
	listen, u := proxyFlags("http-relay", args)
	serveConns(listen, func(c net.Conn) { relayHTTP(c, u.Host) })
}

// relayHTTP relays requests and their answers one after the other between
// client and a connection it opens to upstream.
func relayHTTP(client net.Conn, upstream string) {
	defer client.Close()
	up, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer up.Close()
	cr, ur := bufio.NewReaderSize(client, 16<<10), bufio.NewReaderSize(up, 16<<10)
	buf := make([]byte, 0, 16<<10)
	for {
		if buf, err = relayMessage(cr, up, buf[:0]); err != nil {
			return
		}
		if buf, err = relayMessage(ur, client, buf[:0]); err != nil {
			return
		}
	}
}

// relayMessage copies one HTTP/1.1 message from r to w: its head in one
// write with a Content-Length body, a chunked body chunk by chunk as it
// comes (event streams are not held back).
func relayMessage(r *bufio.Reader, w io.Writer, buf []byte) ([]byte, error) {
	length, chunked := 0, false
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return buf, err
		}
		buf = append(buf, line...)
		if len(line) <= 2 { // the blank line ending the head
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue // the start line
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return buf, errors.New("bad Content-Length")
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		}
	}
	if !chunked {
		start := len(buf)
		buf = append(buf, make([]byte, length)...)
		if _, err := io.ReadFull(r, buf[start:]); err != nil {
			return buf, err
		}
		_, err := w.Write(buf)
		return buf, err
	}
	for { // the head, then each chunk with its size line, as it arrives
		if _, err := w.Write(buf); err != nil {
			return buf, err
		}
		buf = buf[:0]
		line, err := r.ReadSlice('\n')
		if err != nil {
			return buf, err
		}
		buf = append(buf, line...)
		size, _, _ := bytes.Cut(bytes.TrimSpace(line), []byte(";"))
		n, err := strconv.ParseUint(string(size), 16, 31)
		if err != nil {
			return buf, errors.New("bad chunk size")
		}
		if n == 0 { // the last chunk: trailers, then a blank line
			for {
				line, err := r.ReadSlice('\n')
				if err != nil {
					return buf, err
				}
				buf = append(buf, line...)
				if len(line) <= 2 {
					_, err := w.Write(buf)
					return buf, err
				}
			}
		}
		start := len(buf)
		buf = append(buf, make([]byte, n+2)...) // the data and its CRLF
		if _, err := io.ReadFull(r, buf[start:]); err != nil {
			return buf, err
		}
	}
}
