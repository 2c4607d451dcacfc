package sockio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// pair returns a wrapped client connection and the server's end of it, both
// on loopback.
func pair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return Wrap(c), s
}

func TestWrapKeepsOtherConns(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a {
		t.Error("a non-TCP connection was wrapped")
	}
}

func TestReadWrite(t *testing.T) {
	c, s := pair(t)
	if _, ok := c.(interface{ CloseWrite() error }); !ok {
		t.Error("the wrapped connection lost CloseWrite")
	}

	t.Run("round trip", func(t *testing.T) {
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("server read %q, %v", buf, err)
		}
		if _, err := s.Write([]byte("pong")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "pong" {
			t.Fatalf("client read %q, %v", buf, err)
		}
	})

	t.Run("a read deadline ends a waiting read", func(t *testing.T) {
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		defer c.SetReadDeadline(time.Time{})
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("read past the deadline: %v", err)
		}
	})

	t.Run("the peer closing is end of stream", func(t *testing.T) {
		_ = s.Close()
		if n, err := c.Read(make([]byte, 8)); n != 0 || err != io.EOF {
			t.Fatalf("read after the peer closed: %d, %v", n, err)
		}
	})
}

func TestCloseEndsAWaitingRead(t *testing.T) {
	c, _ := pair(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // let the read wait
	_ = c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read on a closed connection: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the waiting read")
	}
}

func TestWriteToAResetPeerFails(t *testing.T) {
	c, s := pair(t)
	// Closing with unread data makes the server send a reset.
	if _, err := c.Write([]byte("unread")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	_ = s.(*net.TCPConn).SetLinger(0)
	_ = s.Close()
	var err error
	for i := 0; i < 50 && err == nil; i++ {
		_, err = c.Write([]byte("more"))
		time.Sleep(5 * time.Millisecond)
	}
	var oe *net.OpError
	if err == nil || !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("writes to a reset connection: %v", err)
	}
}

func TestWriteWaitsForTheReader(t *testing.T) {
	c, s := pair(t)
	// Socket buffers start at a few hundred KiB and grow only as the
	// reader reads; with 16 MiB to write and a reader that starts late, the
	// write must wait for the socket to drain.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	got := make(chan []byte, 1)
	go func() {
		time.Sleep(50 * time.Millisecond)
		b := make([]byte, len(big))
		_, _ = io.ReadFull(s, b)
		got <- b
	}()
	start := time.Now()
	n, err := c.Write(big)
	if err != nil || n != len(big) {
		t.Fatalf("wrote %d of %d: %v", n, len(big), err)
	}
	if time.Since(start) < 40*time.Millisecond {
		t.Fatal("the write did not wait for the reader: the test no longer covers waiting")
	}
	if !bytes.Equal(<-got, big) {
		t.Fatal("the server read other bytes than were written")
	}
}
