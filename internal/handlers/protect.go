package handlers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"

	"github.com/contactrelay/contactrelay/internal/clients/provider"
)

// Protection configures the guard of one provider. The zero value means no
// rate limit, no concurrency cap beyond the runner's, and a circuit breaker
// that opens after 5 consecutive transient failures for 30s.
type Protection struct {
	// RateLimit is the most calls per second; zero means unlimited.
	RateLimit float64
	// MaxConcurrency is the most calls at once; zero means unlimited.
	MaxConcurrency int
	// BreakerFailures is the run of consecutive transient failures that
	// opens the circuit. Default 5.
	BreakerFailures uint32
	// BreakerOpenFor is how long an open circuit refuses calls before it
	// lets one through to test the provider. Default 30s.
	BreakerOpenFor time.Duration
}

// errCircuitOpen says a provider's circuit is open: no call is made until
// it lets one through again. With probing, the circuit is half-open: one
// trial call is testing the provider, and the others wait for its answer.
type errCircuitOpen struct {
	provider string
	until    time.Time
	probing  bool
}

func (e errCircuitOpen) Error() string {
	if e.probing {
		return e.provider + " circuit half-open: a trial call is testing the provider; other calls wait for its answer"
	}
	return fmt.Sprintf("%s circuit open until %s: calls are held back while the provider keeps failing", e.provider, e.until.Format(time.RFC3339))
}

// errNotCalled reports to the breaker a call that was admitted and then
// not made: it counts neither way.
var errNotCalled = errors.New("not called")

// guard protects one provider: a rate limit, a cap on concurrent calls and
// a circuit breaker that opens on a run of transient failures. Permanent
// failures prove the provider up and count as successes.
type guard struct {
	provider string
	breaker  *gobreaker.TwoStepCircuitBreaker[struct{}]
	limiter  *rate.Limiter // nil: unlimited
	slots    chan struct{} // nil: uncapped
	openFor  time.Duration
	now      func() time.Time
	mu       sync.Mutex
	openedAt time.Time
}

func newGuard(name string, p Protection, hooks Hooks, now func() time.Time) *guard {
	if p.BreakerFailures == 0 {
		p.BreakerFailures = 5
	}
	if p.BreakerOpenFor == 0 {
		p.BreakerOpenFor = 30 * time.Second
	}
	g := &guard{provider: name, openFor: p.BreakerOpenFor, now: now}
	if p.RateLimit > 0 {
		g.limiter = rate.NewLimiter(rate.Limit(p.RateLimit), max(1, int(math.Ceil(p.RateLimit))))
	}
	if p.MaxConcurrency > 0 {
		g.slots = make(chan struct{}, p.MaxConcurrency)
	}
	g.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:    name,
		Timeout: p.BreakerOpenFor,
		IsSuccessful: func(err error) bool {
			return err == nil || provider.ClassOf(err) == provider.Permanent
		},
		IsExcluded: func(err error) bool { return errors.Is(err, errNotCalled) },
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= p.BreakerFailures
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				g.mu.Lock()
				g.openedAt = g.now()
				g.mu.Unlock()
			}
			if hooks.CircuitChange != nil {
				hooks.CircuitChange(name, from.String(), to.String())
			}
		},
	})
	return g
}

// admit waits until a call may be made and returns done, which the caller
// must call with the call's error. It fails with errCircuitOpen when the
// circuit is open, or with ctx's error while waiting.
func (g *guard) admit(ctx context.Context) (done func(error), err error) {
	report, err := g.breaker.Allow()
	if errors.Is(err, gobreaker.ErrTooManyRequests) {
		return nil, errCircuitOpen{provider: g.provider, probing: true}
	}
	if err != nil {
		g.mu.Lock()
		until := g.openedAt.Add(g.openFor)
		g.mu.Unlock()
		return nil, errCircuitOpen{provider: g.provider, until: until}
	}
	if g.slots != nil {
		select {
		case g.slots <- struct{}{}:
		case <-ctx.Done():
			report(errNotCalled) // say nothing of the provider
			return nil, ctx.Err()
		}
	}
	if g.limiter != nil {
		if err := g.limiter.Wait(ctx); err != nil {
			g.release()
			report(errNotCalled)
			return nil, fmt.Errorf("wait for %s's rate limit: %w", g.provider, err)
		}
	}
	return func(err error) {
		g.release()
		report(err)
	}, nil
}

func (g *guard) release() {
	if g.slots != nil {
		<-g.slots
	}
}
