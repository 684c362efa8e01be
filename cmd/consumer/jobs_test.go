package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/jobs"
	"github.com/contactrelay/contactrelay/internal/natstest"
	"github.com/contactrelay/contactrelay/internal/provision"
	"github.com/contactrelay/contactrelay/internal/replay"
)

// jobCLIEnv, set to 1, makes the test binary run the command line of
// CONTACTRELAY_JOB_ARGS (its arguments, separated by \x1f) as main does:
// a consumer process for TestReplayJobKilledHalfWay, which kills it.
const (
	jobCLIEnv  = "CONTACTRELAY_JOB_CLI"
	jobArgsEnv = "CONTACTRELAY_JOB_ARGS"
)

// TestJobCLIProcess is the consumer's command line in a process of its
// own, for the tests that kill it. Otherwise it skips.
func TestJobCLIProcess(t *testing.T) {
	if os.Getenv(jobCLIEnv) != "1" {
		t.Skip("a consumer process for TestReplayJobKilledHalfWay, run only by it")
	}
	err := run(context.Background(), strings.Split(os.Getenv(jobArgsEnv), "\x1f"), os.Getenv, nil, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(exitCode(err))
	}
}

// cliProcess is a consumer command line running in a process of its own.
type cliProcess struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
}

// startCLI runs 'consumer args…' against natsURL in a process of its own.
func startCLI(t *testing.T, natsURL string, args ...string) *cliProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestJobCLIProcess$", "-test.timeout=0")
	cmd.Env = append(os.Environ(), jobCLIEnv+"=1", jobArgsEnv+"="+strings.Join(args, "\x1f"), "NATS_URL="+natsURL)
	p := &cliProcess{cmd: cmd, out: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	require.NoError(t, cmd.Start())
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("consumer %s: %v; its last output:\n%s", strings.Join(args, " "), cmd.ProcessState, tail(p.out.String(), 30))
		}
	})
	return p
}

// wait waits for the process to end and returns its exit code and output.
func (p *cliProcess) wait(t *testing.T, within time.Duration) (int, string) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(within):
		t.Fatalf("the consumer process did not end within %s", within)
	}
	return p.cmd.ProcessState.ExitCode(), p.out.String()
}

// fillOpenFailures opens n retryable failures through the store's own
// writer (the code the service uses), and returns each commandId's
// failed event id.
func fillOpenFailures(t *testing.T, js jetstream.JetStream, n int) map[string]string {
	t.Helper()
	ctx := context.Background()
	w, err := failstore.OpenWriter(ctx, js)
	require.NoError(t, err)
	ids := make(map[string]string, n)
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(64)
	for i := range n {
		g.Go(func() error {
			id := fmt.Sprintf("job-%05d", i)
			f := contact.Failed{CommandID: id, Provider: "instantpay", Reason: contact.ReasonExhausted, Retryable: true, Attempts: 3,
				Message: "instantpay kept failing: 503", Command: json.RawMessage(fmt.Sprintf(`{"commandId":%q,"name":"Customer %d","email":"c%d@example.com","mobile":"+919876543210","tagId":"65a1b2c3d4e5f6a7b8c9d0e1"}`, id, i, i))}
			ev, err := events.NewEvent("", contact.SubjectFailed, id, "", time.Now(), f)
			if err != nil {
				return err
			}
			e, err := failstore.NewEntry(&ev, ev.AppendJSON(nil), false)
			if err != nil {
				return err
			}
			mu.Lock()
			ids[id] = ev.ID
			mu.Unlock()
			return w.Open(gctx, e, nil)
		})
	}
	require.NoError(t, g.Wait())
	return ids
}

func done0(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// TestReplayJobKilledHalfWay: 'consumer replay --all' of 10,000 open
// failures, killed (SIGKILL) once its job's cursor has passed half, cannot
// be resumed by another process while the dead one's lease lasts; once
// it has run out, 'consumer replay --resume ID' finishes it, and the
// command stream holds exactly one replay of each of the 10,000.
func TestReplayJobKilledHalfWay(t *testing.T) {
	t.Parallel()
	const n = 10000
	srv := natstest.Start(t, nil)
	_, js := srv.Connect(t)
	ctx := context.Background()
	require.NoError(t, provision.Setup(ctx, js, provision.Topology{}))
	start := time.Now()
	ids := fillOpenFailures(t, js, n)
	t.Logf("filled %d open failures in %s", n, time.Since(start).Round(time.Millisecond))
	st, err := jobs.OpenStore(ctx, js)
	require.NoError(t, err)

	first := startCLI(t, srv.ClientURL(), "replay", "--all", "--rate", "2000")
	var j *jobs.Job
	require.Eventually(t, func() bool {
		all, err := st.List(ctx)
		if err != nil || len(all) != 1 {
			return false
		}
		j = all[0]
		// Past half, in the middle of a page (saved after a send, not at
		// a page's end): what it sent after that save is sent again.
		return j.Counts.Selected > n/2 && j.Counts.Selected%jobs.DefaultPageSize != 0
	}, 90*time.Second, 5*time.Millisecond, "the job's cursor passes half")
	require.NoError(t, first.cmd.Process.Kill())
	<-first.exited
	j, err = st.Get(ctx, j.ID)
	require.NoError(t, err)
	t.Logf("killed at %d of %d (cursor %d, started at seq %d) after %s", j.Counts.Selected, n, j.Cursor, j.StartSeq, time.Since(start).Round(time.Millisecond))
	require.Less(t, j.Counts.Selected, n, "killed half-way")
	assert.Equal(t, jobs.Running, j.State)
	assert.Contains(t, first.out.String(), "job "+j.ID+": replay of 10000 open failures")

	code, out := startCLI(t, srv.ClientURL(), "replay", "--resume", j.ID, "--nats-url", srv.ClientURL()).wait(t, 30*time.Second)
	assert.Equal(t, 1, code, "a second process cannot take the job while the dead one's lease lasts:\n%s", tail(out, 5))
	assert.Contains(t, out, "is running in "+j.Owner)

	t.Logf("refused while the lease lasts, after %s", time.Since(start).Round(time.Millisecond))
	require.Eventually(t, func() bool { return time.Now().After(j.LeaseUntil) }, 2*jobs.DefaultLease, 50*time.Millisecond)
	code, out = startCLI(t, srv.ClientURL(), "replay", "--resume", j.ID).wait(t, 120*time.Second)
	require.Equal(t, 0, code, tail(out, 10))
	m := regexp.MustCompile(`(?m)^10000 selected: (\d+) replayed, (?:(\d+) already sent, )?0 skipped, 0 failed to publish$`).FindStringSubmatch(out)
	require.NotNil(t, m, "the summary counts every failure:\n%s", tail(out, 5))
	t.Logf("resumed and done after %s", time.Since(start).Round(time.Millisecond))
	again, _ := strconv.Atoi(m[2])
	t.Logf("resumed: %s replayed, %d already sent (sent again after the last save, dropped by the stream)", m[1], again)
	assert.Equal(t, n, done0(m[1])+again)

	done, err := st.Get(ctx, j.ID)
	require.NoError(t, err)
	assert.Equal(t, jobs.Done, done.State)
	assert.Equal(t, n, done.Counts.Selected)

	s, err := js.Stream(ctx, provision.CommandStream)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(n), info.State.Msgs, "one command per failure, none stored twice")
	require.Equal(t, uint64(n), info.State.LastSeq)
	// Read them through the service's durable consumer (no service runs
	// here), without acknowledging them.
	cons, err := js.Consumer(ctx, provision.CommandStream, provision.Durable)
	require.NoError(t, err)
	count := map[string]int{}
	for read := 0; read < n; {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		require.NoError(t, err)
		got := 0
		for msg := range batch.Messages() {
			count[msg.Headers().Get(contact.HeaderMsgID)]++
			got++
		}
		require.NoError(t, batch.Error())
		require.NotZero(t, got, "the consumer delivers every command")
		read += got
	}
	for id, ev := range ids {
		if c := count[replay.MsgIDPrefix+ev]; c != 1 {
			t.Errorf("%s: %d replays, want exactly 1", id, c)
		}
	}
	t.Logf("checked the command stream after %s", time.Since(start).Round(time.Millisecond))
	if t.Failed() {
		return
	}
	code, out = startCLI(t, srv.ClientURL(), "jobs").wait(t, 30*time.Second)
	assert.Equal(t, 0, code)
	assert.Regexp(t, j.ID+` +replay +done +\[#+\] 100% 10000/10000`, out, "consumer jobs lists it")
	assert.False(t, errors.Is(err, jobs.ErrNotFound))
}

// --resume continues a job with its own filter: another selection flag
// with it is a usage error, a connection flag is not.
func TestResumeTakesNoSelection(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"replay", "--resume", "abc", "--reason", "invalid"},
		{"replay", "--resume", "abc", "--all"},
		{"failures", "discard", "--resume", "abc", "--limit", "3"},
	} {
		err := run(t.Context(), args, func(string) string { return "" }, nil, &strings.Builder{}, &strings.Builder{})
		assert.Equal(t, 2, exitCode(err), "%v: %v", args, err)
		assert.ErrorContains(t, err, "--resume", "%v", args)
	}
	srv := natstest.Start(t, nil)
	_, js := srv.Connect(t)
	require.NoError(t, provision.Setup(t.Context(), js, provision.Topology{}))
	var out strings.Builder
	err := run(t.Context(), []string{"replay", "--resume", "0123456789abcdef", "--nats-url", srv.ClientURL()}, func(string) string { return "" }, nil, &out, &out)
	assert.Equal(t, 2, exitCode(err), "an unknown job: %v", err)
	assert.ErrorIs(t, err, jobs.ErrNotFound)
}
