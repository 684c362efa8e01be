package handlers

import (
	"sync"
	"time"
)

// maxHolds bounds the claims an instance remembers. Forgetting one is
// safe: the next delivery that sees it waits a whole hold again.
const maxHolds = 1 << 16

// holds remembers, per record key, the revision of a claim this instance
// saw and when it first saw it, by its own clock. Another instance's claim
// is timed from there: how long it has been seen, never a time written by
// another machine, so clocks that disagree (or jump) cannot cut a hold
// short. It is safe for concurrent use.
type holds struct {
	now  func() time.Time
	mu   sync.Mutex
	seen map[string]seenClaim
}

type seenClaim struct {
	rev uint64
	at  time.Time
}

func newHolds(now func() time.Time) *holds {
	return &holds{now: now, seen: map[string]seenClaim{}}
}

// remaining returns how much longer the claim at revision rev of key may
// hold, given its hold: all of it when this revision is seen for the first
// time, and zero (forgetting it) once it has passed.
func (hs *holds) remaining(key string, rev uint64, hold time.Duration) time.Duration {
	now := hs.now()
	hs.mu.Lock()
	defer hs.mu.Unlock()
	s, ok := hs.seen[key]
	if !ok || s.rev != rev {
		if len(hs.seen) >= maxHolds {
			hs.evict(now, hold)
		}
		hs.seen[key] = seenClaim{rev: rev, at: now}
		return hold
	}
	left := hold - now.Sub(s.at)
	if left <= 0 {
		delete(hs.seen, key)
		return 0
	}
	return left
}

// evict forgets the claims seen longer ago than twice hold, or, when none
// is that old, every claim: each will be waited out afresh.
func (hs *holds) evict(now time.Time, hold time.Duration) {
	for k, s := range hs.seen {
		if now.Sub(s.at) > 2*hold {
			delete(hs.seen, k)
		}
	}
	if len(hs.seen) >= maxHolds {
		clear(hs.seen)
	}
}
