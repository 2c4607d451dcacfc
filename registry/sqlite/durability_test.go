package sqlite

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/registry"
)

// Environment of the writer child of TestDurabilityUnderSIGKILL.
const (
	envWriterDB    = "MCPGW_TEST_DURABILITY_DB"
	envWriterRound = "MCPGW_TEST_DURABILITY_ROUND"
)

// TestDurabilityWriter is the child process of TestDurabilityUnderSIGKILL:
// it registers servers in a loop through registry.Service and prints each
// path only after Register returned, until it is killed. Run directly it
// does nothing.
func TestDurabilityWriter(t *testing.T) {
	file := os.Getenv(envWriterDB)
	if file == "" {
		t.Skip("the writer child of TestDurabilityUnderSIGKILL")
	}
	round := os.Getenv(envWriterRound)
	ctx := context.Background()
	s, err := Open(ctx, file)
	if err != nil {
		fmt.Printf("error open: %v\n", err)
		os.Exit(3)
	}
	svc := registry.NewService(s)
	fmt.Println("ready")
	for i := 0; ; i++ {
		path := fmt.Sprintf("/r%s-%06d", round, i)
		doc := fmt.Sprintf(`{"server_name": "durable %d", "path": %q, "proxy_pass_url": "http://127.0.0.1:9/mcp",
			"headers": [{"Authorization": "Bearer $T"}], "tags": ["durability"],
			"tool_list": [{"name": "echo", "schema": {"type": "object"}}]}`, i, path)
		if _, _, err := svc.Register(ctx, []byte(doc), false); err != nil {
			fmt.Printf("error register %s: %v\n", path, err)
			os.Exit(3)
		}
		// Every few registrations, also change an earlier one, so that
		// updates are in flight at the kill too.
		if i%5 == 4 {
			prev := fmt.Sprintf("/r%s-%06d", round, i-2)
			if _, err := svc.SetEnabled(ctx, prev, false); err != nil {
				fmt.Printf("error disable %s: %v\n", prev, err)
				os.Exit(3)
			}
			fmt.Println("disabled " + prev)
		}
		// os.Stdout is unbuffered: the line is in the pipe when Println returns.
		fmt.Println("ack " + path)
	}
}

// TestDurabilityUnderSIGKILL proves SPEC section 7: a crash at any moment
// loses no acknowledged registration. A child process (this test binary)
// registers servers in a loop; the parent kills it with SIGKILL at a random
// moment, reopens the database and checks that every acknowledged
// registration is there and that the file passes PRAGMA integrity_check.
// The rounds share one file, so each also proves a crashed database reopens
// and takes new writes.
func TestDurabilityUnderSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	file := filepath.Join(t.TempDir(), "mcpgw.db")
	acked := map[string]bool{}    // every acknowledged path, all rounds
	disabled := map[string]bool{} // acknowledged disables
	for round := 1; round <= 3; round++ {
		killAfter := time.Duration(200+rand.IntN(600)) * time.Millisecond
		n := runWriter(t, file, round, killAfter, acked, disabled)
		t.Logf("round %d: killed after %v and %d acknowledged registrations", round, killAfter, n)
		if n == 0 {
			t.Fatalf("round %d: the writer acknowledged nothing in %v; the test proves nothing", round, killAfter)
		}

		ctx := context.Background()
		s, err := Open(ctx, file)
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		if res, err := s.IntegrityCheck(ctx); err != nil || res != "ok" {
			t.Errorf("round %d: integrity_check = %q, %v", round, res, err)
		}
		list, err := s.List(ctx)
		if err != nil {
			t.Fatalf("round %d: list: %v", round, err)
		}
		present := map[string]*registry.Server{}
		for _, srv := range list {
			present[srv.Path] = srv
		}
		missing := 0
		for p := range acked {
			srv, ok := present[p]
			if !ok {
				missing++
				if missing <= 5 {
					t.Errorf("round %d: acknowledged registration %s is gone", round, p)
				}
				continue
			}
			if len(srv.Headers) != 1 || srv.Headers[0].Value.Reveal() != "Bearer $T" || srv.NumTools != 1 {
				t.Errorf("round %d: %s came back damaged: %d headers, %d tools", round, p, len(srv.Headers), srv.NumTools)
			}
			if disabled[p] && srv.Enabled {
				t.Errorf("round %d: acknowledged disable of %s is lost", round, p)
			}
		}
		if missing > 0 {
			t.Fatalf("round %d: %d of %d acknowledged registrations lost", round, missing, len(acked))
		}
		// At most the one registration in flight at each kill may exist
		// without an acknowledgement.
		if extra := len(list) - len(acked); extra < 0 || extra > round {
			t.Errorf("round %d: %d servers stored, %d acknowledged", round, len(list), len(acked))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// runWriter starts the writer child on file, kills it with SIGKILL
// killAfter its first acknowledgement, and records what it acknowledged.
// It returns the number of registrations acknowledged in this round.
func runWriter(t *testing.T, file string, round int, killAfter time.Duration, acked, disabled map[string]bool) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDurabilityWriter$", "-test.count=1", "-test.v=false")
	cmd.Env = append(os.Environ(), envWriterDB+"="+file, envWriterRound+"="+fmt.Sprint(round))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	n := 0
	killed := false
	var killTimer <-chan time.Time
	deadline := time.After(60 * time.Second)
	// Read until the pipe closes: after the kill this drains every line the
	// child wrote before it died, so no acknowledgement is missed.
	for lines != nil {
		select {
		case line, ok := <-lines:
			switch {
			case !ok:
				lines = nil
			case strings.HasPrefix(line, "ack "):
				acked[strings.TrimPrefix(line, "ack ")] = true
				n++
				if n == 1 {
					killTimer = time.After(killAfter)
				}
			case strings.HasPrefix(line, "disabled "):
				disabled[strings.TrimPrefix(line, "disabled ")] = true
			case strings.HasPrefix(line, "error "):
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("round %d: writer failed: %s", round, line)
			}
		case <-killTimer:
			killTimer = nil
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("round %d: kill: %v", round, err)
			}
			killed = true
		case <-deadline:
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: the writer made no progress in time (%d acknowledged)", round, n)
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("round %d: the writer exited by itself: %v", round, err)
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("round %d: the writer was not killed by SIGKILL: %v", round, cmd.ProcessState)
	}
	return n
}
