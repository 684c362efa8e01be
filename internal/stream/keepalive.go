package stream

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// alive keeps a message from being redelivered while it is processed.
type alive struct {
	mu      sync.Mutex
	t       *time.Timer
	stopped bool
}

// keepAlive sends an in-progress ack for msg every period until stopped.
func keepAlive(msg jetstream.Msg, period time.Duration) *alive {
	a := &alive{}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.t = time.AfterFunc(period, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.stopped {
			return
		}
		_ = msg.InProgress()
		a.t.Reset(period)
	})
	return a
}

func (a *alive) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopped = true
	a.t.Stop()
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
