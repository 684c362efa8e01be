package stream

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
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
// with a publish that stores nothing (CheckPublish), a second after the
// refusal, then less and less often, up to every probeEvery, until the
// server lets it through; and Check reports it for readiness until then.
// It is safe for concurrent use.
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

// ErrPublishRefused reports a publish to a subject the server refuses to
// this service's credentials.
var ErrPublishRefused = errors.New("the server refuses this service's publishes to the subject (permissions violation)")

// Observe takes an error from the connection's asynchronous error callback
// and notes a permissions violation for publishing, reporting whether err
// was one (the caller need not log it: Failed reports it once, with the
// command it held up). nats.go reports the subject only in the error's
// text ("permissions violation for publish to \"subject\""), which is
// therefore read here.
func (p *Permissions) Observe(err error) bool {
	if !errors.Is(err, nats.ErrPermissionViolation) {
		return false
	}
	subject, ok := refusedSubject(err.Error())
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

// refusedSubject reads the subject out of the text of a publish
// permissions violation, which the server writes as
// `Permissions Violation for Publish to %q` (Go quoting) and nats.go
// passes on after "nats: permissions violation: ". The words are matched
// whatever their case, in place: lowering the whole text could change its
// length (a subject may hold any character) and misplace the subject.
func refusedSubject(text string) (string, bool) {
	const marker = "publish to "
	for i := 0; i+len(marker) <= len(text); i++ {
		if !strings.EqualFold(text[i:i+len(marker)], marker) {
			continue
		}
		rest := strings.TrimSpace(text[i+len(marker):])
		subject, err := strconv.Unquote(rest)
		if err != nil {
			subject = strings.Trim(rest, `"`)
		}
		return subject, subject != ""
	}
	return "", false
}

// Try returns ErrPublishRefused, wrapped, for a subject the server
// refuses, reporting that once per subject, with commandID, the command it
// holds up (as Failed does); nil when a publish to it may be tried. A
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
// ErrPublishRefused, wrapped, when the server refused the subject, and
// logs that once per subject.
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
	return fmt.Errorf("publish %s: %w", subject, ErrPublishRefused)
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
