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

func TestAlarms(t *testing.T) {
	const late = 2 * time.Second // generous: CI machines are shared
	t.Run("rings once, not early", func(t *testing.T) {
		s := newAlarms()
		start := time.Now()
		_, ch := ringAt(s, 30*time.Millisecond)
		select {
		case at := <-ch:
			if at.Sub(start) < 30*time.Millisecond-sweepSlack {
				t.Fatalf("rang after %v, want 30ms", at.Sub(start))
			}
		case <-time.After(late):
			t.Fatal("did not ring")
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
		select {
		case at := <-ch:
			if d := at.Sub(moved); d < 100*time.Millisecond-sweepSlack {
				t.Fatalf("rang %v after the reset, want 100ms", d)
			}
		case <-time.After(late):
			t.Fatal("did not ring")
		}
	})
	t.Run("an earlier alarm wakes the sweeper", func(t *testing.T) {
		s := newAlarms()
		far, _ := ringAt(s, time.Hour)
		defer far.stop()
		start := time.Now()
		_, ch := ringAt(s, 20*time.Millisecond)
		select {
		case at := <-ch:
			if d := at.Sub(start); d > time.Second {
				t.Fatalf("rang after %v: the sweeper slept on the hour-long alarm", d)
			}
		case <-time.After(late):
			t.Fatal("did not ring while a later alarm was armed")
		}
	})
	t.Run("a stopped or fired alarm rings again when reset", func(t *testing.T) {
		s := newAlarms()
		a, ch := ringAt(s, time.Millisecond)
		<-ch
		a.reset(time.Millisecond)
		select {
		case <-ch:
		case <-time.After(late):
			t.Fatal("a fired alarm did not ring again")
		}
		a.stop()
		a.reset(time.Millisecond)
		select {
		case <-ch:
		case <-time.After(late):
			t.Fatal("a stopped alarm did not ring again")
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
		select {
		case <-ch:
		case <-time.After(late):
			t.Fatal("no ring after the sweeper had ended")
		}
	})
}

// TestAlarmsConcurrent arms, moves and stops alarms from many goroutines
// (for the race detector) and checks that exactly the ones left armed rang.
func TestAlarmsConcurrent(t *testing.T) {
	s := newAlarms()
	var rang atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if (g+i)%2 == 0 {
					// Armed far out, then moved near: rings once.
					a := s.after(time.Hour, func() { rang.Add(1) })
					a.reset(time.Duration(i%3) * time.Millisecond)
					continue
				}
				// Stopped, maybe after ringing: settles either way, once.
				a := s.after(time.Duration(i%5)*time.Millisecond, func() { rang.Add(1) })
				if a.stop() {
					rang.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for rang.Load() != 8*200 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d alarms settled", rang.Load(), 8*200)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	if n := rang.Load(); n != 8*200 {
		t.Fatalf("%d settlements, want %d: an alarm rang twice or after being stopped", n, 8*200)
	}
}
