// Package status tells what the service is doing now: each instance keeps
// a Tracker of its commands in flight and its circuits, and answers
// requests on the core NATS subject Subject with them; Gather asks every
// instance at once and adds what the durable consumer says is waiting.
// 'consumer status' and the console's Status page show a Snapshot.
package status

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/pause"
	"github.com/contactrelay/contactrelay/internal/provision"
)

// Subject is where instances answer status requests (core NATS, no
// stream): every instance answers each request.
const Subject = provision.StatusSubject

// DefaultWait is how long Gather waits for the instances' answers by
// default: they answer within milliseconds, on one core NATS round trip.
const DefaultWait = 500 * time.Millisecond

// maxInFlightIDs bounds the commandIds an instance reports per provider.
const maxInFlightIDs = 100

// maxAttempts bounds the attempts an instance reports per command.
const maxAttempts = 10

// Command is one command in flight at an instance: since when, its
// provider calls in this delivery so far (the last 10), and when its next
// try is due after a failure.
type Command struct {
	CommandID string    `json:"commandId"`
	Since     time.Time `json:"since"`
	Attempts  []Attempt `json:"attempts,omitempty"`
	NextTry   time.Time `json:"nextTry,omitzero"`
}

// Attempt is one provider call: "create" or "lookup", when it started,
// and its answer's class ("ok", "transient", "permanent", "ambiguous").
type Attempt struct {
	Op    string    `json:"op"`
	At    time.Time `json:"at"`
	Class string    `json:"class"`
}

// Circuit is a provider's circuit at one instance, and since when.
type Circuit struct {
	State string    `json:"state"`
	Since time.Time `json:"since"`
}

// Minute counts the outcomes an instance published in one minute.
type Minute struct {
	Start   time.Time `json:"start"`
	Created uint64    `json:"created"`
	Failed  uint64    `json:"failed"`
}

// minutes is how many minutes of outcomes an instance keeps.
const minutes = 60

// Instance is what one instance reports.
type Instance struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
	// InFlight counts the commands being decided per provider, and
	// Commands lists them (at most 100 per provider, oldest first).
	InFlight map[string]int       `json:"inFlight"`
	Commands map[string][]Command `json:"commands,omitempty"`
	Circuits map[string]Circuit   `json:"circuits"`
	Pauses   []pause.State        `json:"pauses"`
	// Minutes counts its outcomes per minute over the last hour (since
	// it started, at most), oldest first, the current minute last.
	Minutes []Minute `json:"minutes"`
}

// Tracker keeps one instance's commands in flight and circuits. Its
// methods are safe for concurrent use; they are the runner's and the
// handler's hooks.
type Tracker struct {
	id       string
	now      func() time.Time
	pauses   func() []pause.State
	mu       sync.Mutex
	inFlight map[uint64]tracked // by stream sequence
	circuits map[string]Circuit
	ring     [minutes]Minute // by minute of the hour
}

type tracked struct {
	provider, commandID string
	since, next         time.Time
	attempts            []Attempt
}

// NewTracker returns a Tracker of an instance with the enabled providers'
// circuits closed since now; pauses (may be nil) tells the pauses it
// knows.
func NewTracker(providers []string, pauses func() []pause.State) *Tracker {
	host, _ := os.Hostname()
	t := &Tracker{id: fmt.Sprintf("%s/%d", host, os.Getpid()), now: time.Now, pauses: pauses,
		inFlight: map[uint64]tracked{}, circuits: map[string]Circuit{}}
	for _, p := range providers {
		t.circuits[p] = Circuit{State: "closed", Since: t.now().UTC()}
	}
	return t
}

// Routed notes a delivery, at seq, being decided for provider.
func (t *Tracker) Routed(seq uint64, commandID, provider string) {
	t.mu.Lock()
	t.inFlight[seq] = tracked{provider: provider, commandID: commandID, since: t.now().UTC()}
	t.mu.Unlock()
}

// Attempted notes a provider call of the delivery at seq.
func (t *Tracker) Attempted(seq uint64, op string, at time.Time, class string) {
	t.mu.Lock()
	if c, ok := t.inFlight[seq]; ok {
		c.attempts = append(c.attempts, Attempt{Op: op, At: at.UTC(), Class: class})
		if len(c.attempts) > maxAttempts {
			c.attempts = c.attempts[len(c.attempts)-maxAttempts:]
		}
		c.next = time.Time{}
		t.inFlight[seq] = c
	}
	t.mu.Unlock()
}

// Retrying notes when the next try of the delivery at seq is due.
func (t *Tracker) Retrying(seq uint64, next time.Time) {
	t.mu.Lock()
	if c, ok := t.inFlight[seq]; ok {
		c.next = next.UTC()
		t.inFlight[seq] = c
	}
	t.mu.Unlock()
}

// Settled notes the delivery at seq ended.
func (t *Tracker) Settled(seq uint64) {
	t.mu.Lock()
	delete(t.inFlight, seq)
	t.mu.Unlock()
}

// Outcome notes an outcome published: created, or failed.
func (t *Tracker) Outcome(created bool) {
	now := t.now().UTC().Truncate(time.Minute)
	t.mu.Lock()
	m := &t.ring[now.Minute()]
	if !m.Start.Equal(now) {
		*m = Minute{Start: now}
	}
	if created {
		m.Created++
	} else {
		m.Failed++
	}
	t.mu.Unlock()
}

// CircuitChange notes a provider's circuit changing state.
func (t *Tracker) CircuitChange(provider, _, to string) {
	t.mu.Lock()
	t.circuits[provider] = Circuit{State: to, Since: t.now().UTC()}
	t.mu.Unlock()
}

// Report returns what the instance reports now.
func (t *Tracker) Report() Instance {
	in := Instance{ID: t.id, At: t.now().UTC(), InFlight: map[string]int{}, Commands: map[string][]Command{}}
	t.mu.Lock()
	for _, c := range t.inFlight {
		in.InFlight[c.provider]++
		in.Commands[c.provider] = append(in.Commands[c.provider], Command{CommandID: c.commandID, Since: c.since,
			Attempts: slices.Clone(c.attempts), NextTry: c.next})
	}
	in.Circuits = maps.Clone(t.circuits)
	now := in.At.Truncate(time.Minute)
	for i := minutes - 1; i >= 0; i-- {
		start := now.Add(-time.Duration(i) * time.Minute)
		m := Minute{Start: start}
		if r := t.ring[start.Minute()]; r.Start.Equal(start) {
			m = r
		}
		in.Minutes = append(in.Minutes, m)
	}
	t.mu.Unlock()
	for p, cs := range in.Commands {
		slices.SortFunc(cs, func(a, b Command) int { return a.Since.Compare(b.Since) })
		in.Commands[p] = cs[:min(len(cs), maxInFlightIDs)]
	}
	if t.pauses != nil {
		in.Pauses = t.pauses()
	}
	return in
}

// Serve answers status requests on nc with t's reports until the
// subscription it returns is unsubscribed (or the connection closed).
func Serve(nc *nats.Conn, t *Tracker) (*nats.Subscription, error) {
	sub, err := nc.Subscribe(Subject, func(m *nats.Msg) {
		b, err := json.Marshal(t.Report())
		if err == nil {
			_ = m.Respond(b)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("answer status requests on %s: %w", Subject, err)
	}
	return sub, nil
}

// Snapshot is the whole service now.
type Snapshot struct {
	At time.Time `json:"at"`
	// Waiting counts the commands not yet delivered, and OldestWaiting
	// is when the oldest command not yet settled was stored.
	Waiting       uint64    `json:"waiting"`
	OldestWaiting time.Time `json:"oldestWaiting,omitzero"`
	// AckPending counts the commands delivered and not yet settled (held
	// ones included), as the durable consumer says.
	AckPending uint64     `json:"ackPending"`
	Instances  []Instance `json:"instances"`
	// InFlight sums the instances' commands in flight per provider.
	InFlight map[string]int `json:"inFlight"`
	// Minutes sums the instances' outcomes per minute, oldest first.
	Minutes []Minute `json:"minutes"`
	// Pauses are the pauses in CONTACT_PAUSES.
	Pauses []pause.State `json:"pauses"`
	// Problems says what could not be read.
	Problems []string `json:"problems,omitempty"`
}

// Gather asks every instance for its report, for wait (the answers that
// come within it are kept), and reads the durable consumer and the pauses.
func Gather(ctx context.Context, js jetstream.JetStream, wait time.Duration) Snapshot {
	s := Snapshot{At: time.Now().UTC(), InFlight: map[string]int{}}
	nc := js.Conn()
	inbox := nc.NewRespInbox()
	replies := make(chan *nats.Msg, 256)
	sub, err := nc.ChanSubscribe(inbox, replies)
	if err == nil {
		defer func() { _ = sub.Unsubscribe() }()
		err = nc.PublishRequest(Subject, inbox, nil)
	}
	if err != nil {
		s.Problems = append(s.Problems, "ask the instances: "+err.Error())
	}
	if c, err := js.Consumer(ctx, provision.CommandStream, provision.Durable); err != nil {
		s.Problems = append(s.Problems, fmt.Sprintf("durable consumer %s: %v", provision.Durable, err))
	} else {
		info := c.CachedInfo()
		s.Waiting, s.AckPending = info.NumPending, uint64(info.NumAckPending)
		if s.Waiting+s.AckPending > 0 {
			if cs, err := js.Stream(ctx, provision.CommandStream); err == nil {
				if m, err := cs.GetMsg(ctx, info.AckFloor.Stream+1, jetstream.WithGetMsgSubject(contact.SubjectCreate)); err == nil {
					s.OldestWaiting = m.Time.UTC()
				}
			}
		}
	}
	if st, err := pause.Open(ctx, js); err != nil {
		s.Problems = append(s.Problems, err.Error())
	} else if s.Pauses, err = st.List(ctx); err != nil {
		s.Problems = append(s.Problems, err.Error())
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
collect:
	for err == nil {
		select {
		case m := <-replies:
			var in Instance
			if json.Unmarshal(m.Data, &in) == nil {
				s.Instances = append(s.Instances, in)
			}
		case <-timer.C:
			break collect
		case <-ctx.Done():
			break collect
		}
	}
	slices.SortFunc(s.Instances, func(a, b Instance) int { return strings.Compare(a.ID, b.ID) })
	now := s.At.Truncate(time.Minute)
	for i := minutes - 1; i >= 0; i-- {
		s.Minutes = append(s.Minutes, Minute{Start: now.Add(-time.Duration(i) * time.Minute)})
	}
	for _, in := range s.Instances {
		for p, n := range in.InFlight {
			s.InFlight[p] += n
		}
		for _, m := range in.Minutes {
			if i := minutes - 1 - int(now.Sub(m.Start)/time.Minute); i >= 0 && i < minutes && s.Minutes[i].Start.Equal(m.Start) {
				s.Minutes[i].Created += m.Created
				s.Minutes[i].Failed += m.Failed
			}
		}
	}
	return s
}
