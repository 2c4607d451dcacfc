package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a child process the bench measures (the gateway or the reference
// proxy), listening on addr.
type proc struct {
	cmd  *exec.Cmd
	addr string
	data string
	logs *bytes.Buffer
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startGateway runs `mcpgw serve` on a free loopback port with data in dir
// and waits until /readyz answers 200. It returns how long that took.
func startGateway(ctx context.Context, bin, dir, logLevel string) (*proc, time.Duration, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, 0, err
	}
	if logLevel == "" {
		logLevel = "info"
	}
	logs := &bytes.Buffer{}
	cmd := exec.CommandContext(ctx, bin, "serve", "--listen", addr, "--data", dir, "--log-level", logLevel)
	cmd.Stdout, cmd.Stderr = logs, logs
	dieWithParent(cmd)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &proc{cmd: cmd, addr: addr, data: dir, logs: logs}
	if err := waitReady("http://"+addr+"/readyz", 60*time.Second); err != nil {
		p.stop()
		return nil, 0, fmt.Errorf("gateway not ready: %w\n%s", err, logs.String())
	}
	return p, time.Since(start), nil
}

// startProxy runs this binary again as one of the reference relays
// ("naive-proxy" or "tcp-proxy") in front of target.
func startProxy(ctx context.Context, mode, target string) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logs := &bytes.Buffer{}
	cmd := exec.CommandContext(ctx, self, mode, "--listen", addr, "--target", target)
	cmd.Stdout, cmd.Stderr = logs, logs
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, addr: addr, logs: logs}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return p, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.stop()
	return nil, fmt.Errorf("%s did not start: %s", mode, logs.String())
}

func waitReady(u string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		resp, err := http.Get(u)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("status %d", resp.StatusCode)
		} else {
			last = err
		}
		time.Sleep(10 * time.Millisecond)
	}
	return last
}

func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// rss returns the resident set size of the process in bytes.
func (p *proc) rss() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// cpu returns the user+system CPU time the process has used.
func (p *proc) cpu() time.Duration {
	user, sys := p.cpuSplit()
	return user + sys
}

// cpuSplit returns the user and the system (kernel) CPU time the process
// has used, from /proc/<pid>/stat.
func (p *proc) cpuSplit() (user, sys time.Duration) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+2:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0, 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut) * time.Second / hz, time.Duration(st) * time.Second / hz
}

// adminToken reads the gateway's local admin key.
func (p *proc) adminToken() string {
	b, _ := os.ReadFile(p.data + "/admin.token")
	return strings.TrimSpace(string(b))
}

// register posts one registration document to the gateway.
func (p *proc) register(hc *http.Client, doc any) error {
	b, _ := json.Marshal(doc)
	req, _ := http.NewRequest(http.MethodPost, "http://"+p.addr+"/api/v1/servers", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+p.adminToken())
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("register: %d %s", resp.StatusCode, body)
	}
	return nil
}
