package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/contactrelay/contactrelay/internal/provision"
)

// probeEvery is the longest wait between two probes of a subject the
// server refused, to notice that the permission was granted; the first
// comes a second after the refusal, and the wait doubles up to it.
const probeEvery = 15 * time.Second

// Permissions keeps what the NATS server said of the service's right to
// publish: the subjects it refused (a permissions violation, reported on
// the connection's error callback, while the publish itself only times
// out). A refused subject is reported once, with the first commandId it
// held up; publishes to it fail fast meanwhile (Try), so that commands
// that cannot settle do not hold the tail's slots; the Runner probes it
// with a publish that stores nothing (provision.CheckPublish), a second
// after the refusal, then less and less often, up to every probeEvery,
// until the server lets it through; and Check reports it for readiness
// until then. It is state of a running service, told of the tail's
// publishes; the probe itself is provisioning's. It is safe for
// concurrent use.
type Permissions struct {
	log        *slog.Logger
	now        func() time.Time
	probeEvery time.Duration // the longest wait between probes
	tick       time.Duration // how often probes are looked for
	mu         sync.Mutex
	refused    map[string]*refusal
}

type refusal struct {
	since    time.Time
	lastTry  time.Time     // the last probe, or the refusal
	wait     time.Duration // before the next probe
	reported bool
}

// NewPermissions returns a Permissions that logs to log.
func NewPermissions(log *slog.Logger) *Permissions {
	return &Permissions{log: log, now: time.Now, probeEvery: probeEvery, tick: 250 * time.Millisecond, refused: map[string]*refusal{}}
}

// Observe takes an error from the connection's asynchronous error callback
// and notes a permissions violation for publishing, reporting whether err
// was one (the caller need not log it: Failed reports it once, with the
// command it held up). nats.go reports the subject only in the error's
// text, which provision.RefusedSubject reads.
func (p *Permissions) Observe(err error) bool {
	subject, ok := provision.RefusedSubject(err)
	if !ok {
		return false
	}
	p.refuse(subject)
	return true
}

// refuse notes that the server refused a publish to subject.
func (p *Permissions) refuse(subject string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refused[subject] == nil {
		now := p.now()
		p.refused[subject] = &refusal{since: now, lastTry: now, wait: min(time.Second, p.probeEvery)}
	}
}

// Try returns provision.ErrPublishRefused, wrapped, for a subject the
// server refuses, reporting that once per subject, with commandID, the
// command it holds up (as Failed does); nil when a publish to it may be
// tried. A
// command is never the probe: a refused publish is answered only by the
// publish timeout, holding its command that long.
func (p *Permissions) Try(subject, commandID string) error {
	p.mu.Lock()
	refused := p.refused[subject] != nil
	p.mu.Unlock()
	if !refused {
		return nil
	}
	return p.Failed(subject, commandID)
}

// Failed is told of a failed publish to subject for commandID; it returns
// provision.ErrPublishRefused, wrapped, when the server refused the
// subject, and logs that once per subject.
func (p *Permissions) Failed(subject, commandID string) error {
	p.mu.Lock()
	r := p.refused[subject]
	first := r != nil && !r.reported
	if first {
		r.reported = true
	}
	p.mu.Unlock()
	if r == nil {
		return nil
	}
	if first {
		commandID = clipID(commandID)
		p.log.Error("the NATS server refuses this service's publishes to a subject: grant the permission; "+
			"commands are kept and handed back, backing off, until it is granted",
			"subject", subject, "commandId", commandID)
	}
	return fmt.Errorf("publish %s: %w", subject, provision.ErrPublishRefused)
}

// Succeeded is told of a publish to subject that the stream stored: the
// subject is permitted again.
func (p *Permissions) Succeeded(subject string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r := p.refused[subject]; r != nil {
		delete(p.refused, subject)
		p.log.Info("the NATS server accepts this service's publishes to the subject again", "subject", subject)
	}
}

// Check returns an error naming the subjects refused, for readiness.
func (p *Permissions) Check() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.refused) == 0 {
		return nil
	}
	subjects := make([]string, 0, len(p.refused))
	for s := range p.refused {
		subjects = append(subjects, s)
	}
	slices.Sort(subjects)
	return fmt.Errorf("publishing refused by the server (permissions) to: %s", strings.Join(subjects, ", "))
}

// checkRefused probes the subjects p holds refused (every one at start),
// and clears each the server lets through again.
func (p *Permissions) checkRefused(ctx context.Context, nc *nats.Conn, subjects []string) {
	for _, subject := range subjects {
		switch err := provision.CheckPublish(ctx, nc, []string{subject}); {
		case err == nil:
			p.Succeeded(subject)
		case errors.Is(err, provision.ErrPublishRefused):
			p.refuse(subject)
		}
	}
}

// dueProbes returns the refused subjects whose next probe is due, and
// marks them tried.
func (p *Permissions) dueProbes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	var due []string
	for subject, r := range p.refused {
		if now.Sub(r.lastTry) >= r.wait {
			r.lastTry = now
			r.wait = min(2*r.wait, p.probeEvery)
			due = append(due, subject)
		}
	}
	slices.Sort(due)
	return due
}

// checkAll checks every subject in subjects at once, and logs those the
// server refuses, in one line.
func (p *Permissions) checkAll(ctx context.Context, nc *nats.Conn, subjects []string) {
	err := provision.CheckPublish(ctx, nc, subjects)
	var refused *provision.PublishRefusedError
	if errors.As(err, &refused) {
		for _, s := range refused.Subjects {
			p.refuse(s)
		}
		p.log.Error("permissions check: the NATS server refuses this service's publishes to subjects it needs: grant the permission; "+
			"commands whose outcome goes there are kept and handed back, backing off, until it is granted",
			"subjects", strings.Join(refused.Subjects, ", "))
	}
	if err != nil && !errors.Is(err, provision.ErrPublishRefused) && ctx.Err() == nil {
		p.log.Warn("permissions check incomplete", "error", err)
	}
}

// probeRefused probes the refused subjects until ctx is done: a second
// after the refusal, the wait doubling up to probeEvery.
func (p *Permissions) probeRefused(ctx context.Context, nc *nats.Conn) {
	tick := time.NewTicker(p.tick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			p.checkRefused(ctx, nc, p.dueProbes())
		}
	}
}
