package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/contact"
)

// The shared watch.
//
// However many calls of a Client wait for outcomes at once, the Client
// reads the events through one watch: one core subscription to
// contact.created and contact.failed, so that the server sends the
// connection one copy of each event. The watch hands each event to the
// calls waiting for its commandId (its CloudEvents subject). It starts
// with the first waiting call and stops when the last one leaves; a Client
// no call waits on holds no subscription and no goroutine.
//
// A core subscription misses what is published while the connection is
// down. So, for the calls waiting then, a reconnect (and events the
// subscription dropped) make every waiting call read its command's record
// again, and the watch reads the event stream once, from a little before
// the connection was lost to its end, with one ordered consumer that it
// deletes when done (a scan). A scan is also how a call finds an answer
// the record does not keep (a conflict) that came before the call began.
// Scans asked for while one runs are merged into the next one: at most one
// runs at a time, whatever the number of calls.

// scanMargin is how far before the connection was lost a scan starts, for
// events the server sent just before and clocks that differ a little.
const scanMargin = 10 * time.Second

// scanFetchWait bounds one fetch of a scan: a fetch that gets nothing in
// this long ends the scan (the stream has nothing more).
const scanFetchWait = time.Second

// sharedWatch is a Client's one watch of the events, shared by its
// waiting calls. Its methods are safe for concurrent use.
type sharedWatch struct {
	c      *Client
	nc     *nats.Conn
	subs   []*nats.Subscription
	status chan nats.Status
	// ctx is done when the watch stops; it bounds the goroutines the
	// watch owns (following the connection, scanning).
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	waiters map[string]map[*waiter]struct{} // by commandId
	count   int
	// recheck is closed, and replaced, to tell every waiting call to
	// read its command's record again.
	recheck chan struct{}
	// offline is when the connection was lost; zero while connected.
	offline time.Time
	// scanFrom is where the next scan starts; zero when none is asked
	// for. scanning is set while the scanning goroutine runs.
	scanFrom time.Time
	scanning bool
}

// waiter is one waiting call's place in the shared watch.
type waiter struct {
	commandID string
	// events holds the events of its commandId not read yet; an event
	// that finds it full is dropped (the call's record reads cover it).
	events chan watched
}

// startSharedWatch subscribes to the events on c's connection and follows
// the connection's status.
func startSharedWatch(c *Client) (*sharedWatch, error) {
	nc := c.js.Conn()
	ctx, cancel := context.WithCancel(context.Background())
	sw := &sharedWatch{
		c: c, nc: nc, ctx: ctx, cancel: cancel,
		waiters: map[string]map[*waiter]struct{}{},
		recheck: make(chan struct{}),
	}
	// One subscription a subject: one copy of each event.
	for _, subject := range []string{contact.SubjectCreated, contact.SubjectFailed} {
		sub, err := nc.Subscribe(subject, func(m *nats.Msg) { sw.deliver(m.Data) })
		if err != nil {
			cancel()
			for _, s := range sw.subs {
				_ = s.Unsubscribe()
			}
			return nil, fmt.Errorf("subscribe to %s: %w", subject, err)
		}
		// The callback only hands events on and never blocks; the
		// limits are generous so that a burst is not dropped while it
		// catches up.
		_ = sub.SetPendingLimits(1<<20, 256<<20)
		sw.subs = append(sw.subs, sub)
	}
	sw.status = nc.StatusChanged(nats.CONNECTED, nats.RECONNECTING, nats.DISCONNECTED, nats.CLOSED)
	go sw.follow()
	return sw, nil
}

// stop unsubscribes and stops the goroutines the watch owns; it does not
// wait for them: a scan under way ends at its next fetch.
func (sw *sharedWatch) stop() {
	sw.cancel()
	for _, sub := range sw.subs {
		_ = sub.Unsubscribe()
	}
	sw.nc.RemoveStatusListener(sw.status)
}

// add registers w.
func (sw *sharedWatch) add(w *waiter) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.addLocked(w)
}

func (sw *sharedWatch) addLocked(w *waiter) {
	set := sw.waiters[w.commandID]
	if set == nil {
		set = map[*waiter]struct{}{}
		sw.waiters[w.commandID] = set
	}
	set[w] = struct{}{}
	sw.count++
}

func (sw *sharedWatch) removeLocked(w *waiter) {
	set := sw.waiters[w.commandID]
	if _, ok := set[w]; !ok {
		return
	}
	delete(set, w)
	if len(set) == 0 {
		delete(sw.waiters, w.commandID)
	}
	sw.count--
}

// remove unregisters w and returns how many waiters are left.
func (sw *sharedWatch) remove(w *waiter) int {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.removeLocked(w)
	return sw.count
}

// rekey moves w to the events of another commandId (one the stream gave:
// <stream>:<sequence>).
func (sw *sharedWatch) rekey(w *waiter, commandID string) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.removeLocked(w)
	w.commandID = commandID
	sw.addLocked(w)
}

// deliver hands an event to the calls waiting for its commandId. It runs
// on the subscription's goroutine and on the scan's, and never blocks.
func (sw *sharedWatch) deliver(raw []byte) {
	v := decode(raw)
	if v.ev.ID == "" {
		return
	}
	sw.mu.Lock()
	defer sw.mu.Unlock()
	for w := range sw.waiters[v.ev.Subject] {
		select {
		case w.events <- v:
		default:
		}
	}
}

// rechecked returns the channel closed when the waiting calls should read
// their records again.
func (sw *sharedWatch) rechecked() <-chan struct{} {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.recheck
}

// follow follows the connection: when it comes back after a loss, or
// when the subscription dropped events, the waiting calls read their
// records again and the events of the gap are read from the stream. It
// returns when the watch stops or the connection is closed.
func (sw *sharedWatch) follow() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var dropped int
	lastTick := time.Now()
	for {
		select {
		case <-sw.ctx.Done():
			return
		case s, ok := <-sw.status:
			if !ok {
				return
			}
			switch s {
			case nats.RECONNECTING, nats.DISCONNECTED:
				sw.mu.Lock()
				if sw.offline.IsZero() {
					sw.offline = time.Now()
				}
				sw.mu.Unlock()
			case nats.CONNECTED:
				sw.mu.Lock()
				since := sw.offline
				sw.offline = time.Time{}
				sw.mu.Unlock()
				if since.IsZero() {
					since = time.Now()
				}
				sw.missed(since)
			case nats.CLOSED:
				sw.missed(time.Now()) // the records' reads say the connection is closed
				return
			}
		case now := <-tick.C:
			d := 0
			for _, sub := range sw.subs {
				n, _ := sub.Dropped()
				d += n
			}
			if d > dropped {
				dropped = d
				sw.missed(lastTick)
			}
			lastTick = now
		}
	}
}

// missed says events from since on may have passed the subscription by:
// every waiting call reads its record again, and a scan reads the stream
// from a little before since.
func (sw *sharedWatch) missed(since time.Time) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	close(sw.recheck)
	sw.recheck = make(chan struct{})
	if sw.count > 0 {
		sw.scanLocked(since.Add(-scanMargin))
	}
}

// scan asks for the event stream to be read from since to its end, and
// each event handed to the calls waiting for it.
func (sw *sharedWatch) scan(since time.Time) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.scanLocked(since)
}

func (sw *sharedWatch) scanLocked(since time.Time) {
	if sw.scanFrom.IsZero() || since.Before(sw.scanFrom) {
		sw.scanFrom = since
	}
	if !sw.scanning {
		sw.scanning = true
		go sw.scanLoop()
	}
}

// scanLoop runs the scans asked for, one at a time, until none is, or the
// watch stops. A scan that fails is tried again a little later.
func (sw *sharedWatch) scanLoop() {
	for {
		sw.mu.Lock()
		since := sw.scanFrom
		sw.scanFrom = time.Time{}
		if since.IsZero() || sw.ctx.Err() != nil || sw.count == 0 {
			sw.scanning = false
			sw.mu.Unlock()
			return
		}
		sw.mu.Unlock()
		if err := sw.readFrom(since); err != nil {
			sw.mu.Lock()
			if sw.scanFrom.IsZero() || since.Before(sw.scanFrom) {
				sw.scanFrom = since
			}
			sw.mu.Unlock()
			select {
			case <-sw.ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
}

// readFrom reads the event stream from since to its end with an ordered
// consumer, handing each event on.
func (sw *sharedWatch) readFrom(since time.Time) error {
	ctx, cancel := context.WithTimeout(sw.ctx, time.Minute)
	defer cancel()
	cons, err := sw.c.js.OrderedConsumer(ctx, EventStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{contact.SubjectCreated, contact.SubjectFailed},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &since,
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", EventStream, err)
	}
	for ctx.Err() == nil {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(scanFetchWait))
		if err != nil {
			return fmt.Errorf("read %s: %w", EventStream, err)
		}
		n, end := 0, false
		for msg := range batch.Messages() {
			n++
			sw.deliver(msg.Data())
			if md, err := msg.Metadata(); err == nil && md.NumPending == 0 {
				end = true
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("read %s: %w", EventStream, err)
		}
		if end || n == 0 {
			return nil
		}
	}
	return ctx.Err()
}

// join registers a call waiting for commandID's outcome in the shared
// watch, starting the watch if none runs.
func (c *Client) join(commandID string) (*sharedWatch, *waiter, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watch == nil {
		sw, err := startSharedWatch(c)
		if err != nil {
			return nil, nil, err
		}
		c.watch = sw
	}
	w := &waiter{commandID: commandID, events: make(chan watched, 16)}
	c.watch.add(w)
	return c.watch, w, nil
}

// leave unregisters w, and stops the shared watch when it was the last.
func (c *Client) leave(sw *sharedWatch, w *waiter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sw.remove(w) == 0 && c.watch == sw {
		c.watch = nil
		sw.stop()
	}
}
