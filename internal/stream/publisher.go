package stream

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publisher publishes without waiting, on a JetStream context of its own,
// and hands each message's answer, with the value it was sent with, to
// answer: once per message, on a goroutine of the NATS client's (answer
// must not block). A closed connection answers every message waiting at
// once, rather than when each times out.
type publisher[T any] struct {
	js      jetstream.JetStream
	answer  func(v T, ack *jetstream.PubAck, err error)
	mu      sync.Mutex
	pending map[*nats.Msg]T
	done    bool // closed: publish answers at once
	closed  chan nats.Status
}

// newPublisher returns a publisher on nc whose messages time out after
// timeout, with at most maxPending of them in flight in the client.
func newPublisher[T any](nc *nats.Conn, timeout time.Duration, maxPending int, answer func(T, *jetstream.PubAck, error)) (*publisher[T], error) {
	p := &publisher[T]{answer: answer, pending: map[*nats.Msg]T{}}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, ack *jetstream.PubAck) {
			if v, ok := p.take(m); ok {
				p.answer(v, ack, nil)
			}
		}),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			if v, ok := p.take(m); ok {
				p.answer(v, nil, err)
			}
		}),
		jetstream.WithPublishAsyncTimeout(timeout),
		jetstream.WithPublishAsyncMaxPending(maxPending))
	if err != nil {
		return nil, fmt.Errorf("asynchronous publisher: %w", err)
	}
	p.js = js
	p.closed = nc.StatusChanged(nats.CLOSED)
	go func() {
		if _, ok := <-p.closed; ok {
			p.abandon(nats.ErrConnectionClosed)
		}
	}()
	return p, nil
}

// errPublisherClosed answers what is published after close.
var errPublisherClosed = errors.New("publisher closed")

// publish sends m; its answer comes with v (at once, with an error, after
// close).
func (p *publisher[T]) publish(m *nats.Msg, v T, opts ...jetstream.PublishOpt) {
	// Register before sending: the acknowledgement may come back before
	// the publish call returns.
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		p.answer(v, nil, errPublisherClosed)
		return
	}
	p.pending[m] = v
	p.mu.Unlock()
	if _, err := p.js.PublishMsgAsync(m, opts...); err != nil {
		if v, ok := p.take(m); ok {
			p.answer(v, nil, err)
		}
	}
}

// take removes what waits for m's answer; ok is false when another answer
// took it first.
func (p *publisher[T]) take(m *nats.Msg) (v T, ok bool) {
	p.mu.Lock()
	v, ok = p.pending[m]
	delete(p.pending, m)
	p.mu.Unlock()
	return v, ok
}

// abandon answers every message still waiting with err.
func (p *publisher[T]) abandon(err error) {
	p.mu.Lock()
	waiting := make([]T, 0, len(p.pending))
	for m, v := range p.pending {
		waiting = append(waiting, v)
		delete(p.pending, m)
	}
	p.mu.Unlock()
	for _, v := range waiting {
		p.answer(v, nil, err)
	}
}

// close answers what still waits with err and releases the connection's
// listener and the reply subscription.
func (p *publisher[T]) close(err error) {
	p.mu.Lock()
	p.done = true // a late publish must not bring the reply subscription back
	p.mu.Unlock()
	p.js.Conn().RemoveStatusListener(p.closed)
	p.js.CleanupPublisher() // answers what is pending through the error handler
	p.abandon(err)
}
