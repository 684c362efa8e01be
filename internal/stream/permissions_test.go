package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/fakeclock"
	"github.com/contactrelay/contactrelay/internal/natstest"
	"github.com/contactrelay/contactrelay/internal/provision"
)

// violation is the error nats.go hands the async error callback for the
// server's -ERR 'Permissions Violation for Publish to "<subject>"'
// (Conn.processErr: the quotes trimmed, ErrPermissionViolation wrapped).
func violation(subject string) error {
	return fmt.Errorf("%w: %s", nats.ErrPermissionViolation, fmt.Sprintf("Permissions Violation for Publish to %q", subject))
}

func newTestPermissions() (*Permissions, *fakeclock.Clock, *bytes.Buffer) {
	var logs bytes.Buffer
	p := NewPermissions(slog.New(slog.NewJSONHandler(&logs, nil)))
	c := fakeclock.New(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	p.now = c.Now
	return p, c, &logs
}

func TestPermissionsObserve(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		want    bool
		subject string // refused afterwards
	}{
		{"publish violation", violation("contact.failed"), true, "contact.failed"},
		{"key-value subject", violation("$KV.CONTACT_RECORDS.abc"), true, "$KV.CONTACT_RECORDS.abc"},
		{"subject in upper case kept as it is", violation("Contact.Failed"), true, "Contact.Failed"},
		{"non-ASCII subject", violation("contact.İstanbul"), true, "contact.İstanbul"},
		{"subject longer in lower case", violation("İİİİ.failed"), true, "İİİİ.failed"},
		{"quote in the subject", violation(`contact."q"`), true, `contact."q"`},
		{"wrapped once more", fmt.Errorf("async: %w", violation("contact.created")), true, "contact.created"},
		{"subscribe violation", fmt.Errorf("%w: %s", nats.ErrPermissionViolation, `Permissions Violation for Subscription to "contact.>"`), false, ""},
		{"reply violation", fmt.Errorf("%w: %s", nats.ErrPermissionViolation, `Permissions Violation for Publish with Reply of "_INBOX.x"`), false, ""},
		{"other error naming a publish", errors.New(`nats: Permissions Violation for Publish to "contact.failed"`), false, ""},
		{"slow consumer", nats.ErrSlowConsumer, false, ""},
		{"nil", nil, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _, _ := newTestPermissions()
			assert.Equal(t, tc.want, p.Observe(tc.err), "Observe(%v)", tc.err)
			if tc.subject == "" {
				assert.NoError(t, p.Check(), "nothing refused")
				return
			}
			assert.ErrorIs(t, p.Try(tc.subject, "c-try"), provision.ErrPublishRefused, "the subject is refused, exactly as the server named it")
			assert.ErrorContains(t, p.Check(), tc.subject)
		})
	}
}

// TestPermissionsObserveTheRealError has a real server refuse a publish
// and hands Observe the error the client reported, so that the parsing
// follows nats.go and the server rather than this package's idea of them.
func TestPermissionsObserveTheRealError(t *testing.T) {
	srv := natstest.Start(t, func(o *server.Options) {
		o.Users = []*server.User{natstest.User("svc", "pw", "contact.failed")}
	})
	got := make(chan error, 4)
	nc, err := nats.Connect(srv.URL("svc", "pw"), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { got <- err }))
	require.NoError(t, err)
	defer nc.Close()
	require.NoError(t, nc.Publish("contact.created", []byte("allowed")))
	require.NoError(t, nc.Publish("contact.failed", []byte("denied")))
	require.NoError(t, nc.Flush())
	var seen error
	select {
	case seen = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the client reported no error for the refused publish")
	}
	t.Logf("nats.go reports: %v", seen)

	p, _, _ := newTestPermissions()
	require.True(t, p.Observe(seen), "Observe recognises %q", seen)
	assert.EqualError(t, p.Check(), "publishing refused by the server (permissions) to: contact.failed")
	assert.NoError(t, p.Try("contact.created", "c-try"), "the allowed subject is not refused")
}

func TestPermissionsTryFailsFastAndProbesBackOff(t *testing.T) {
	p, clk, _ := newTestPermissions()
	assert.NoError(t, p.Try("contact.failed", "c-try"), "nothing refused yet: publish")
	require.True(t, p.Observe(violation("contact.failed")))

	assert.ErrorIs(t, p.Try("contact.failed", "c-try"), provision.ErrPublishRefused, "refused at once after the violation")
	assert.ErrorContains(t, p.Try("contact.failed", "c-try"), "publish contact.failed: ", "the error names the subject")
	assert.NoError(t, p.Try("contact.created", "c-try"), "other subjects are not held up")

	// Probes: 1s after the refusal, then 2s, 4s, 8s, then every 15s; a
	// command is never the probe.
	var probes []time.Duration
	start := clk.Now()
	for range 200 { // 50s in steps of 250ms
		clk.Advance(250 * time.Millisecond)
		if due := p.dueProbes(); len(due) > 0 {
			assert.Equal(t, []string{"contact.failed"}, due)
			probes = append(probes, clk.Now().Sub(start))
			require.True(t, p.Observe(violation("contact.failed")), "refused again")
		}
		assert.ErrorIs(t, p.Try("contact.failed", "c-try"), provision.ErrPublishRefused, "refused between the probes")
	}
	want := []time.Duration{1 * time.Second, 3 * time.Second, 7 * time.Second, 15 * time.Second, 30 * time.Second, 45 * time.Second}
	assert.Equal(t, want, probes, "probes back off, up to probeEvery")
}

func TestPermissionsFailedReportsOncePerSubject(t *testing.T) {
	p, _, logs := newTestPermissions()
	assert.NoError(t, p.Failed("contact.failed", "c-0"), "a failure of a subject not refused is no refusal (a timeout, say)")
	assert.Empty(t, logs.String(), "and is not reported here")

	require.True(t, p.Observe(violation("contact.failed")))
	require.True(t, p.Observe(violation("contact.created")))
	for i := range 5 {
		err := p.Failed("contact.failed", fmt.Sprintf("c-%d", i+1))
		assert.ErrorIs(t, err, provision.ErrPublishRefused)
		assert.ErrorContains(t, err, "contact.failed")
	}
	long := strings.Repeat("x", 300)
	assert.ErrorIs(t, p.Failed("contact.created", long), provision.ErrPublishRefused)
	assert.ErrorIs(t, p.Failed("contact.created", "c-9"), provision.ErrPublishRefused)

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	require.Len(t, lines, 2, "one line per subject: %s", logs)
	assert.Contains(t, lines[0], `"level":"ERROR"`)
	assert.Contains(t, lines[0], `"subject":"contact.failed"`)
	assert.Contains(t, lines[0], `"commandId":"c-1"`, "the first command held up")
	assert.Contains(t, lines[0], "grant the permission")
	assert.Contains(t, lines[1], `"subject":"contact.created"`)
	assert.Contains(t, lines[1], `"commandId":"`+strings.Repeat("x", maxLoggedID)+`…"`, "a long commandId is cut")
}

func TestPermissionsSucceededClears(t *testing.T) {
	p, _, logs := newTestPermissions()
	p.Succeeded("contact.failed")
	assert.Empty(t, logs.String(), "a success of a subject never refused says nothing")

	require.True(t, p.Observe(violation("contact.failed")))
	require.True(t, p.Observe(violation("contact.created")))
	require.Error(t, p.Failed("contact.failed", "c-1"))
	assert.EqualError(t, p.Check(), "publishing refused by the server (permissions) to: contact.created, contact.failed",
		"every refused subject, sorted")

	p.Succeeded("contact.failed")
	assert.NoError(t, p.Try("contact.failed", "c-try"), "publishes go through again")
	assert.EqualError(t, p.Check(), "publishing refused by the server (permissions) to: contact.created")
	assert.Contains(t, logs.String(), "accepts this service's publishes to the subject again")
	p.Succeeded("contact.created")
	assert.NoError(t, p.Check(), "ready once nothing is refused")

	// Refused again later: reported again, once.
	logs.Reset()
	require.True(t, p.Observe(violation("contact.failed")))
	require.Error(t, p.Failed("contact.failed", "c-2"))
	require.Error(t, p.Failed("contact.failed", "c-3"))
	assert.Equal(t, 1, strings.Count(logs.String(), "refuses this service's publishes"), "a new refusal is a new report: %s", logs)
}

// TestPermissionsConcurrentUse has goroutines refuse, try, fail, probe,
// clear and check subjects at once, and checks what came of it: the
// subjects refused at the end, and one report per refusal and per grant,
// however the calls interleaved (under -race, that they share nothing
// unguarded too).
func TestPermissionsConcurrentUse(t *testing.T) {
	p, clk, logs := newTestPermissions()
	subjects := []string{"s.0", "s.1", "s.2"}
	concurrently := func(step func(i, j int)) {
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				for j := range 200 {
					step(i, j)
				}
			})
		}
		wg.Wait()
	}

	// Every subject is refused, by each goroutine before its own later
	// calls to it: each is reported once, by the first Failed or Try.
	concurrently(func(i, j int) {
		subject := subjects[j%3]
		switch (i + j) % 4 {
		case 0:
			assert.True(t, p.Observe(violation(subject)), "a violation is recognised")
		case 1:
			if err := p.Try(subject, "c-try"); err != nil {
				assert.ErrorIs(t, err, provision.ErrPublishRefused, "Try refuses nothing but a refused subject")
			}
		case 2:
			if err := p.Failed(subject, "c"); err != nil {
				assert.ErrorIs(t, err, provision.ErrPublishRefused, "Failed reports nothing but a refusal")
			}
		default:
			_ = p.Check()
			_ = p.dueProbes()
			clk.Advance(time.Second)
		}
	})
	assert.EqualError(t, p.Check(), "publishing refused by the server (permissions) to: s.0, s.1, s.2", "every subject refused")
	assert.Equal(t, map[string]int{"s.0": 1, "s.1": 1, "s.2": 1}, logCounts(t, logs, "refuses this service's publishes"),
		"each refusal reported once, whichever goroutine came first")

	// s.0 and s.1 are granted while the others go on: each grant is
	// reported once, and s.2 stays refused, reported no more.
	concurrently(func(i, j int) {
		switch (i + j) % 4 {
		case 0:
			p.Succeeded(subjects[j%2])
		case 1:
			_ = p.Try(subjects[j%3], "c-try")
		case 2:
			assert.ErrorIs(t, p.Failed("s.2", "c"), provision.ErrPublishRefused, "s.2 is still refused")
		default:
			_ = p.Check()
			_ = p.dueProbes()
			clk.Advance(time.Second)
		}
	})
	assert.EqualError(t, p.Check(), "publishing refused by the server (permissions) to: s.2", "only s.2 is refused at the end")
	assert.NoError(t, p.Try("s.0", "c-try"), "s.0 is let through")
	assert.NoError(t, p.Try("s.1", "c-try"), "s.1 is let through")
	assert.Equal(t, map[string]int{"s.0": 1, "s.1": 1}, logCounts(t, logs, "accepts this service's publishes to the subject again"),
		"each grant reported once")
	assert.Equal(t, map[string]int{"s.0": 1, "s.1": 1, "s.2": 1}, logCounts(t, logs, "refuses this service's publishes"),
		"no refusal reported twice")
}

// logCounts counts, by subject, the JSON log lines whose message holds
// text.
func logCounts(t *testing.T, logs *bytes.Buffer, text string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for line := range strings.Lines(logs.String()) {
		var rec struct {
			Msg     string `json:"msg"`
			Subject string `json:"subject"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &rec), "a log line is JSON: %s", line)
		if strings.Contains(rec.Msg, text) {
			counts[rec.Subject]++
		}
	}
	return counts
}

// TestPermissionsRecoverWhenGranted has a runner's Permissions see a
// refusal at start, report it, then notice the grant by its own probes,
// with no command published.
func TestPermissionsRecoverWhenGranted(t *testing.T) {
	srv := natstest.Start(t, func(o *server.Options) {
		o.Users = []*server.User{
			natstest.User("admin", "pw"),
			natstest.User("denied", "pw", contact.SubjectFailed, "$KV."+provision.RecordBucket+".>"),
		}
	})
	admin, err := nats.Connect(srv.URL("admin", "pw"))
	require.NoError(t, err)
	t.Cleanup(admin.Close)
	js, err := jetstream.New(admin)
	require.NoError(t, err)
	require.NoError(t, provision.Setup(t.Context(), js, provision.Topology{}))
	var logs bytes.Buffer
	p := NewPermissions(slog.New(slog.NewJSONHandler(&syncWriter{w: &logs}, nil)))
	p.probeEvery = 200 * time.Millisecond
	p.tick = 20 * time.Millisecond
	nc, err := nats.Connect(srv.URL("denied", "pw"), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { p.Observe(err) }))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	p.checkAll(ctx, nc, provision.PublishSubjects())
	require.EqualError(t, p.Check(), "publishing refused by the server (permissions) to: "+provision.PublishSubjects()[2]+", contact.failed")
	assert.Contains(t, logs.String(), "permissions check")
	done := make(chan struct{})
	go func() { defer close(done); p.probeRefused(ctx, nc) }()

	require.NoError(t, srv.Reload(func(o *server.Options) {
		o.Users = []*server.User{natstest.User("admin", "pw"), natstest.User("denied", "pw")}
	}))
	require.Eventually(t, func() bool { return p.Check() == nil }, 5*time.Second, 20*time.Millisecond,
		"the probes notice the grant")
	assert.NoError(t, p.Try(contact.SubjectFailed, "c-1"))
	cancel()
	<-done
}

// syncWriter serialises writes from the probing goroutine and the test.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
