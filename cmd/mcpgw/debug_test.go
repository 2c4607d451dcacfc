package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestDebugListen checks that --debug-listen serves Go's profiles on its own
// address and that the gateway's listener does not.
func TestDebugListen(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	g := startServe(t, func(c *serveConfig) { c.DebugListen = addr })
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("http://" + addr + "/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile") {
		t.Errorf("debug listener: %d %.80q", code, body)
	}
	if code, _ := get(g.url + "/debug/pprof/"); code == 200 {
		t.Error("the gateway's own listener serves profiles")
	}
}
