package gateway

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ringAt arms an alarm and returns a channel that gets the time it rang.
func ringAt(s *alarms, d time.Duration) (*alarm, chan time.Time) {
	ch := make(chan time.Time, 4)
	return s.after(d, func() { ch <- time.Now() }), ch
}

// late is how long a test waits for a ring: generous, as CI machines are
// shared.
const late = 2 * time.Second

// rang waits for the alarm behind ch and returns when it rang.
func rang(t *testing.T, ch chan time.Time) time.Time {
	t.Helper()
	select {
	case at := <-ch:
		return at
	case <-time.After(late):
		t.Fatal("the alarm did not ring")
		return time.Time{}
	}
}

func TestAlarms(t *testing.T) {
	t.Run("rings once, not early", func(t *testing.T) {
		s := newAlarms()
		start := time.Now()
		_, ch := ringAt(s, 30*time.Millisecond)
		if d := rang(t, ch).Sub(start); d < 30*time.Millisecond-sweepSlack {
			t.Fatalf("rang after %v, want 30ms", d)
		}
		select {
		case <-ch:
			t.Fatal("rang twice")
		case <-time.After(60 * time.Millisecond):
		}
	})
	t.Run("stopped never rings", func(t *testing.T) {
		s := newAlarms()
		a, ch := ringAt(s, 20*time.Millisecond)
		if !a.stop() {
			t.Fatal("stop of an armed alarm reported false")
		}
		select {
		case <-ch:
			t.Fatal("a stopped alarm rang")
		case <-time.After(80 * time.Millisecond):
		}
		if a.stop() {
			t.Fatal("second stop reported true")
		}
	})
	t.Run("stop after ringing reports false", func(t *testing.T) {
		s := newAlarms()
		a, ch := ringAt(s, time.Millisecond)
		<-ch
		if a.stop() {
			t.Fatal("stop after ringing reported true")
		}
	})
	t.Run("reset moves the deadline later", func(t *testing.T) {
		s := newAlarms()
		a, ch := ringAt(s, 30*time.Millisecond)
		time.Sleep(10 * time.Millisecond)
		moved := time.Now()
		a.reset(100 * time.Millisecond)
		if d := rang(t, ch).Sub(moved); d < 100*time.Millisecond-sweepSlack {
			t.Fatalf("rang %v after the reset, want 100ms", d)
		}
	})
	t.Run("an earlier alarm wakes the sweeper", func(t *testing.T) {
		s := newAlarms()
		far, _ := ringAt(s, time.Hour)
		defer far.stop()
		start := time.Now()
		_, ch := ringAt(s, 20*time.Millisecond)
		if d := rang(t, ch).Sub(start); d > time.Second {
			t.Fatalf("rang after %v: the sweeper slept on the hour-long alarm", d)
		}
	})
	t.Run("a stopped or fired alarm rings again when reset", func(t *testing.T) {
		s := newAlarms()
		a, ch := ringAt(s, time.Millisecond)
		<-ch
		for _, stopFirst := range []bool{false, true} {
			if stopFirst {
				a.stop()
			}
			a.reset(time.Millisecond)
			rang(t, ch)
		}
	})
	t.Run("the sweeper ends when no alarm is left", func(t *testing.T) {
		s := newAlarms()
		a, _ := ringAt(s, 10*time.Millisecond)
		a.stop()
		deadline := time.Now().Add(late)
		for {
			s.mu.Lock()
			running := s.running
			s.mu.Unlock()
			if !running {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the sweeper still runs with no alarm armed")
			}
			time.Sleep(5 * time.Millisecond)
		}
		_, ch := ringAt(s, time.Millisecond) // and starts again
		rang(t, ch)
	})
}

// TestAlarmsConcurrent arms, moves and stops alarms from many goroutines
// (for the race detector) and checks that exactly the ones left armed rang.
func TestAlarmsConcurrent(t *testing.T) {
	s := newAlarms()
	var settled atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if (g+i)%2 == 0 {
					// Armed far out, then moved near: rings once.
					a := s.after(time.Hour, func() { settled.Add(1) })
					a.reset(time.Duration(i%3) * time.Millisecond)
					continue
				}
				// Stopped, maybe after ringing: settles either way, once.
				a := s.after(time.Duration(i%5)*time.Millisecond, func() { settled.Add(1) })
				if a.stop() {
					settled.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for settled.Load() != 8*200 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d alarms settled", settled.Load(), 8*200)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	if n := settled.Load(); n != 8*200 {
		t.Fatalf("%d settlements, want %d: an alarm rang twice or after being stopped", n, 8*200)
	}
}
