package gateway

import (
	"sync"
	"time"
)

// alarms runs functions at deadlines, for the timeouts every request
// arms and nearly always stops: the upstream timeout of a relayed call and
// the delay before the ingress watches a client for hanging up.
//
// A runtime timer per request (time.AfterFunc) is cheap to create but not
// to arm: a timer that becomes the earliest of its processor's makes the
// runtime wake a second thread to handle it, a futex call and a context
// switch on every relayed call, measured at 0.56 futex calls per call on a
// 2-core machine (BENCHMARKS.md). Here one goroutine with one timer serves
// them all: it sleeps until the earliest deadline it knows of and is woken
// early only when an alarm is armed before that, which fixed timeouts
// never are (a later request's deadline is later). Arming, moving and
// stopping an alarm take a mutex and touch no runtime timer; the goroutine
// exits when no alarm is left, and the next one starts it again.
type alarms struct {
	mu      sync.Mutex
	set     map[*alarm]struct{}
	running bool          // a sweeper goroutine is alive
	planned int64         // when it wakes next (UnixNano)
	poke    chan struct{} // wakes it before planned
}

// alarm is one deadline and its function. An alarm may be armed again
// once stopped or fired.
type alarm struct {
	s  *alarms
	fn func()
	at int64 // UnixNano; guarded by s.mu
	in bool  // in the set; guarded by s.mu
}

// sweepSlack lets alarms due within it ring together with one due now.
const sweepSlack = time.Millisecond

func newAlarms() *alarms {
	return &alarms{set: make(map[*alarm]struct{}), poke: make(chan struct{}, 1)}
}

// after arms a new alarm that calls fn in d, on the sweeper goroutine:
// fn must return quickly.
func (s *alarms) after(d time.Duration, fn func()) *alarm {
	a := &alarm{s: s, fn: fn}
	a.reset(d)
	return a
}

// reset arms a to ring in d: an armed alarm's deadline moves, a stopped
// or fired one rings again.
func (a *alarm) reset(d time.Duration) {
	s := a.s
	at := time.Now().Add(d).UnixNano()
	s.mu.Lock()
	a.at = at
	if !a.in {
		a.in = true
		s.set[a] = struct{}{}
	}
	switch {
	case !s.running:
		s.running, s.planned = true, at
		s.mu.Unlock()
		go s.sweep(at)
		return
	case at < s.planned:
		s.planned = at
		select {
		case s.poke <- struct{}{}:
		default:
		}
	}
	s.mu.Unlock()
}

// stop disarms a; it reports whether a was armed (false: it fired, or is
// firing, or was never armed).
func (a *alarm) stop() bool {
	s := a.s
	s.mu.Lock()
	was := a.in
	if was {
		a.in = false
		delete(s.set, a)
	}
	s.mu.Unlock()
	return was
}

func (s *alarms) sweep(first int64) {
	t := time.NewTimer(time.Duration(first - time.Now().UnixNano()))
	defer t.Stop()
	var due []*alarm
	for {
		select {
		case <-t.C:
		case <-s.poke:
		}
		now := time.Now().UnixNano()
		s.mu.Lock()
		next := int64(0)
		for a := range s.set {
			if at := a.at; at <= now+int64(sweepSlack) {
				a.in = false
				delete(s.set, a)
				due = append(due, a)
			} else if next == 0 || at < next {
				next = at
			}
		}
		if next == 0 {
			s.running = false
		} else {
			s.planned = next
		}
		s.mu.Unlock()
		for i, a := range due {
			a.fn()
			due[i] = nil
		}
		due = due[:0]
		if next == 0 {
			return
		}
		t.Reset(time.Duration(next - now))
	}
}
