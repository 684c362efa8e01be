package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// exitCase is one command line and the exit code docs/CLI.md's table
// gives it.
type exitCase struct {
	name string
	args []string
	env  map[string]string // over the test environment's; "" unsets
	want int
	// interruptOn, if set, cancels the command's context once its stderr
	// shows this text, as Ctrl-C would.
	interruptOn string
}

// cancelOn is a stderr that cancels a context once it has seen a text.
type cancelOn struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	text   string
	cancel context.CancelFunc
}

func (w *cancelOn) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.text != "" && strings.Contains(w.buf.String(), w.text) {
		w.cancel()
	}
	return len(p), nil
}

func (e *testEnv) checkExitCodes(t *testing.T, cases []exitCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := maps.Clone(e.vars)
			maps.Copy(env, tc.env)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			stderr := &cancelOn{text: tc.interruptOn, cancel: cancel}
			var stdout bytes.Buffer
			err := run(ctx, tc.args, func(k string) string { return env[k] }, strings.NewReader(""), &stdout, stderr)
			if tc.interruptOn != "" {
				require.ErrorIs(t, ctx.Err(), context.Canceled, "the command was interrupted, not timed out")
			}
			code, msg := 0, ""
			if err != nil { // as main exits
				code, msg = exitCode(err), err.Error()
			}
			assert.Equal(t, tc.want, code, "consumer %s exits %d\nerror: %s\nstderr: %s",
				strings.Join(tc.args, " "), tc.want, msg, stderr.buf.String())
		})
	}
}

func TestExitCodes(t *testing.T) {
	e := newTestEnv(t)
	noNATS := map[string]string{"NATS_URL": fmt.Sprintf("nats://127.0.0.1:%d", closedPort(t))}
	publish := append([]string{"publish"}, goodFlags...)

	t.Run("NATS unreachable: 2", func(t *testing.T) {
		var cases []exitCase
		for _, args := range [][]string{{"run"}, {"setup"}, publish, {"failures"}, {"replay"}} {
			cases = append(cases, exitCase{name: args[0], args: args, env: noNATS, want: 2})
		}
		e.checkExitCodes(t, cases)
	})
	t.Run("no streams: 2", func(t *testing.T) {
		e.checkExitCodes(t, []exitCase{
			{name: "publish", args: publish, want: 2},
			{name: "failures", args: []string{"failures"}, want: 2},
			{name: "replay", args: []string{"replay"}, want: 2},
		})
	})
	t.Run("usage and configuration: 2", func(t *testing.T) {
		// With the streams there, so that nothing fails for want of them.
		_, _, err := e.cli(t, "setup")
		require.NoError(t, err)
		e.checkExitCodes(t, []exitCase{
			{name: "unknown command", args: []string{"frobnicate"}, want: 2},
			{name: "run: bad flag", args: []string{"run", "--no-such-flag"}, want: 2},
			{name: "run: CONCURRENCY out of range", args: []string{"run"}, env: map[string]string{"CONCURRENCY": "100000"}, want: 2},
			{name: "run: HTTP_ADDR not an address", args: []string{"run"}, env: map[string]string{"HTTP_ADDR": "nope"}, want: 2},
			{name: "run: NATS_URL port not a number", args: []string{"run"}, env: map[string]string{"NATS_URL": "nats://127.0.0.1:notaport"}, want: 2},
			{name: "run: no provider enabled", args: []string{"run"},
				env: map[string]string{"INSTANTPAY_CLIENT_ID": "", "PIK_BASE_URL": "", "DEFAULT_PROVIDER": ""}, want: 2},
			{name: "setup: --replicas 0", args: []string{"setup", "--replicas", "0"}, want: 2},
			{name: "publish: no flags", args: []string{"publish"}, want: 2},
			{name: "publish: --file with --name", args: []string{"publish", "--file", "-", "--name", "a"}, want: 2},
			{name: "failures: --provider bogus", args: []string{"failures", "--provider", "bogus"}, want: 2},
			{name: "failures: --reason bogus", args: []string{"failures", "--reason", "bogus"}, want: 2},
			{name: "replay: --provider bogus", args: []string{"replay", "--provider", "bogus"}, want: 2},
			{name: "replay: --set of an unknown field", args: []string{"replay", "--command-id", "x", "--set", "bogusField=1"}, want: 2},
			{name: "replay: --set of an unknown pik field", args: []string{"replay", "--command-id", "x", "--set", "pik.fristName=Jo"}, want: 2},
		})
	})
	t.Run("streams, no service", func(t *testing.T) {
		e.checkExitCodes(t, []exitCase{
			{name: "setup", args: []string{"setup"}, want: 0},
			{name: "setup again", args: []string{"setup", "--replicas", "1"}, want: 0},
			{name: "version", args: []string{"version"}, want: 0},
			{name: "publish", args: publish, want: 0},
			{name: "failures: none", args: []string{"failures"}, want: 0},
			{name: "replay: nothing selected", args: []string{"replay", "--reason", "invalid"}, want: 0},
			{name: "failures --command-id nope", args: []string{"failures", "--command-id", "nope"}, want: 1},
			{name: "replay --command-id nope", args: []string{"replay", "--command-id", "nope"}, want: 1},
			{name: "replay --command-id nope --dry-run", args: []string{"replay", "--command-id", "nope", "--dry-run"}, want: 1},
			{name: "publish --wait: no outcome in time", args: append([]string{"publish", "--wait", "--timeout", "200ms"}, goodFlags...), want: 2},
			{name: "publish --wait: interrupted", args: append([]string{"publish", "--wait"}, goodFlags...),
				interruptOn: "published contact.create", want: 130},
		})
	})
	t.Run("with the service", func(t *testing.T) {
		e.start(t)
		e.checkExitCodes(t, []exitCase{
			{name: "publish --wait: created", args: append([]string{"publish", "--wait"}, goodFlags...), want: 0},
			{name: "publish --wait: failed", args: []string{"publish", "--wait", "--no-validate", "--name", "Jane"}, want: 1},
		})
	})
}

func TestPublishWaitInterruptedSaysSo(t *testing.T) {
	e := newTestEnv(t)
	_, _, err := e.cli(t, "setup")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	stderr := &cancelOn{text: "published contact.create", cancel: cancel}
	err = run(ctx, append([]string{"publish", "--wait", "--command-id", "int-1"}, goodFlags...), e.getenv, nil, io.Discard, stderr)
	require.Error(t, err)
	assert.Equal(t, 130, exitCode(err))
	assert.Contains(t, err.Error(), "interrupted while waiting for the outcome of int-1")
	assert.NotContains(t, err.Error(), "within", "not a timeout")
	assert.NotContains(t, err.Error(), "is the service running", "not a timeout")
}
