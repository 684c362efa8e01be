package bench_test

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/bench"
	"github.com/contactrelay/contactrelay/internal/exit"
	"github.com/contactrelay/contactrelay/internal/provision"
)

// workerEnv, set in a child's environment, makes this test binary a
// benchmark worker ('consumer bench-worker'), so that BenchmarkPipeline
// counts the consumer's allocations apart from the server's.
const workerEnv = "CONTACTRELAY_BENCH_TEST_WORKER"

// peerExe is the name under which this test binary is a peer of the
// benchmark (consumer bench --peer): a consumer of its own, run through a
// link of that name, that speaks the worker protocol for mode peerMode
// alone and runs the floor's loop.
const (
	peerExe  = "myfloor-peer"
	peerMode = "myfloor"
)

func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == peerExe && len(os.Args) > 1 && os.Args[1] == "bench-worker" {
		o := parseWorkerFlags(os.Args[2:])
		if o.Mode != peerMode {
			fmt.Fprintf(os.Stderr, "peer run as mode %q, not %q\n", o.Mode, peerMode)
			os.Exit(1)
		}
		o.Mode = bench.ModeFloor
		if err := bench.RunWorkerProcess(context.Background(), o, os.Stdin, os.Stdout, io.Discard); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(workerEnv) == "1" && len(os.Args) > 1 && os.Args[1] == "bench-worker" {
		if err := bench.RunWorkerProcess(context.Background(), parseWorkerFlags(os.Args[2:]), os.Stdin, os.Stdout, io.Discard); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// parseWorkerFlags parses the arguments of 'bench-worker' as the
// consumer's does.
func parseWorkerFlags(args []string) bench.WorkerOptions {
	fs := flag.NewFlagSet("bench-worker", flag.ExitOnError)
	o := bench.WorkerFlags(fs)
	_ = fs.Parse(args)
	return *o
}

// BenchmarkPipeline is the short variant of 'consumer bench', for
// benchstat: each mode, its consumer in a process of its own (this test
// binary), on an embedded server, turning a backlog of b.N commands (at
// least 500) into events. Compare allocs/cmd and B/cmd (the consumer's heap
// allocations per command, its own alone), worker-µs/cmd, and cmd/s and
// the ratio between the modes; ns/op includes publishing the backlog and
// starting the consumer. Run it with a fixed count, e.g. -benchtime 4000x.
func BenchmarkPipeline(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{bench.ModeFloor, bench.ModeFloorRecords, bench.ModeRelay} {
		b.Run(mode, func(b *testing.B) {
			env, err := bench.StartEnv(b.Context(), "", 0)
			if err != nil {
				b.Fatal(err)
			}
			defer env.Close()
			s := bench.Scenario{Mode: mode, Concurrency: 64, N: max(b.N, 500)}
			r, err := bench.Run(b.Context(), env, s, func() bench.Worker {
				return &bench.ProcessWorker{Executable: exe, Env: []string{workerEnv + "=1"}}
			})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(r.Throughput, "cmd/s")
			b.ReportMetric(r.P99Ms, "p99-ms")
			b.ReportMetric(r.WorkerCPUus, "worker-µs/cmd")
			b.ReportMetric(r.WorkerAllocs, "allocs/cmd")
			b.ReportMetric(r.WorkerBytes, "B/cmd")
		})
	}
}

// TestWorkerProcessCountsAllocations runs contactrelay in a worker process
// (this test binary): it reports the allocations it made while consuming,
// which the result gives per command.
func TestWorkerProcessCountsAllocations(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	env, err := bench.StartEnv(t.Context(), "", 0)
	require.NoError(t, err)
	defer env.Close()
	dir := t.TempDir()
	r, err := bench.Run(t.Context(), env, bench.Scenario{Mode: bench.ModeRelay, Concurrency: 16, N: 200}, func() bench.Worker {
		return &bench.ProcessWorker{Executable: exe, Env: []string{workerEnv + "=1"}, ProfileDir: dir}
	})
	require.NoError(t, err)
	assert.Zero(t, r.Failed)
	assert.Greater(t, r.WorkerAllocs, 10.0, "a command takes allocations: %v", r.WorkerAllocs)
	assert.Greater(t, r.WorkerBytes, r.WorkerAllocs, "bytes per command exceed allocations per command")
	assert.Positive(t, r.WorkerCPUus)
	for _, f := range []string{"contactrelay-c16-l0s.prof", "contactrelay-c16-l0s-allocs.prof"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if assert.NoError(t, err, "profile %s written", f) {
			assert.Positive(t, st.Size(), "profile %s not empty", f)
		}
	}
}

// TestBenchModes runs each of the benchmark's consumers on a small backlog:
// every command gets one event and one contact, and floor+records leaves
// one record per command, as contactrelay does.
func TestBenchModes(t *testing.T) {
	const n = 300
	for _, mode := range []string{bench.ModeFloor, bench.ModeFloorRecords, bench.ModeRelay} {
		t.Run(mode, func(t *testing.T) {
			env, err := bench.StartEnv(t.Context(), "", 0)
			require.NoError(t, err)
			defer env.Close()
			r, err := bench.Run(t.Context(), env, bench.Scenario{Mode: mode, Concurrency: 16, N: n}, func() bench.Worker { return &bench.GoroutineWorker{} })
			require.NoError(t, err)
			assert.Zero(t, r.Failed, "no command failed")
			assert.Positive(t, r.Throughput)
			assert.Len(t, env.Provider.Contacts(), n, "one contact per command")
			assert.Zero(t, env.Provider.Duplicates())

			nc, err := nats.Connect(env.NATSURL)
			require.NoError(t, err)
			defer nc.Close()
			js, err := jetstream.New(nc)
			require.NoError(t, err)
			kv, err := js.KeyValue(t.Context(), provision.RecordBucket)
			require.NoError(t, err)
			keys, err := kv.ListKeys(t.Context())
			require.NoError(t, err)
			count := 0
			for range keys.Keys() {
				count++
			}
			if mode == bench.ModeFloor {
				assert.Zero(t, count, "the floor keeps no record")
			} else {
				assert.Equal(t, n, count, "a record per command")
			}
		})
	}
}

// TestPeer measures a peer beside the floor as 'consumer bench --modes
// floor --peer myfloor=EXE' does: this test binary, through a link named
// peerExe, running the floor's loop as mode myfloor. The peer gets a row
// of its own, with a throughput, every command answered (Measure returns
// only once each command has its terminal event), the statistics the peer
// reported and its ratio to the floor. The floor's worker is this binary
// under its own name, which refuses a mode it does not know: the peer's
// row can only come from the peer's executable.
func TestPeer(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	link := filepath.Join(dir, peerExe)
	require.NoError(t, os.Symlink(exe, link))
	t.Setenv(workerEnv, "1")
	const n = 300
	var out, progress strings.Builder
	err = bench.Measure(t.Context(), bench.Options{
		N: n, Concurrency: "16", Instances: "1", Modes: bench.ModeFloor, Runs: 1,
		JSON: filepath.Join(dir, "results.json"), Peers: []string{peerMode + "=" + link},
	}, &out, &progress)
	require.NoError(t, err, "progress: %s", progress.String())

	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	require.NoError(t, err)
	var rs []bench.Result
	require.NoError(t, json.Unmarshal(b, &rs))
	require.Len(t, rs, 2, "the floor, then the peer --modes does not name")
	assert.Equal(t, bench.ModeFloor, rs[0].Mode)
	peer := rs[1]
	assert.Equal(t, peerMode, peer.Mode)
	assert.Equal(t, n, peer.N)
	assert.Zero(t, peer.Failed, "every event a contact.created")
	assert.Positive(t, peer.Throughput)
	assert.Positive(t, peer.WorkerCPUus, "the peer's CPU time, from its WorkerStats")
	assert.Greater(t, peer.WorkerAllocs, 10.0, "the peer's allocations, from its WorkerStats")
	assert.Positive(t, peer.PeakRSS, "the peer's peak memory, from its WorkerStats")

	var row []string
	for line := range strings.Lines(out.String()) {
		if f := strings.Fields(line); len(f) > 0 && f[0] == peerMode {
			row = f
		}
	}
	require.NotEmpty(t, row, "a row for the peer in:\n%s", out.String())
	ratio, err := strconv.ParseFloat(row[len(row)-1], 64)
	require.NoError(t, err, "the peer's row ends with its ratio to the floor: %q", row)
	assert.InDelta(t, peer.Throughput/rs[0].Throughput, ratio, 0.006)
}

// TestPeerFlags: a --peer that cannot be run, or a --modes that names
// what is neither a mode nor a peer, is refused before anything runs, as
// a usage error (exit 2).
func TestPeerFlags(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	for _, tc := range []struct {
		name      string
		peers     []string
		modes     string
		inProcess bool
		want      string
	}{
		{name: "no executable", peers: []string{"wm"}, want: "want NAME=EXECUTABLE"},
		{name: "empty executable", peers: []string{"wm="}, want: "want NAME=EXECUTABLE"},
		{name: "empty name", peers: []string{"=" + exe}, want: "want NAME=EXECUTABLE"},
		{name: "a built-in mode", peers: []string{"floor=" + exe}, want: "built-in mode"},
		{name: "a comma in the name", peers: []string{"a,b=" + exe}, want: "no comma"},
		{name: "a slash in the name", peers: []string{"a/b=" + exe}, want: "no comma, slash"},
		{name: "twice", peers: []string{"wm=" + exe, "wm=" + exe}, want: "a second peer"},
		{name: "not found", peers: []string{"wm=" + filepath.Join(t.TempDir(), "none")}, want: "no such file"},
		{name: "a mode that is no peer", peers: []string{"wm=" + exe}, modes: "floor,other", want: `"other" is not floor, floor+records, contactrelay or a --peer (wm)`},
		{name: "in process", peers: []string{"wm=" + exe}, inProcess: true, want: "--in-process runs no peer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			modes := cmp.Or(tc.modes, bench.ModeFloor)
			err := bench.Measure(t.Context(), bench.Options{
				N: 10, Concurrency: "1", Instances: "1", Modes: modes, Runs: 1, Peers: tc.peers, InProcess: tc.inProcess,
			}, io.Discard, io.Discard)
			var ee *exit.Error
			require.ErrorAs(t, err, &ee, "a usage error")
			assert.Equal(t, 2, ee.Code)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

// lateWorker is a worker that says it is ready only once it has turned
// the whole backlog into events (the bench's own subscription, on
// another connection, may still be reading the last of them).
type lateWorker struct {
	bench.GoroutineWorker
	n int
}

func (w *lateWorker) Start(ctx context.Context, s bench.Scenario, env *bench.Env) error {
	nc, err := nats.Connect(env.NATSURL)
	if err != nil {
		return err
	}
	defer nc.Close()
	events := make(chan *nats.Msg, w.n)
	if _, err := nc.ChanSubscribe(contact.SubjectCreated, events); err != nil {
		return err
	}
	if err := nc.Flush(); err != nil {
		return err
	}
	if err := w.GoroutineWorker.Start(ctx, s, env); err != nil {
		return err
	}
	for range w.n {
		select {
		case <-events:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// TestWorkerReadyTooLate: a worker that says it is ready only after it
// has answered every command makes the run fail with the reason, not a
// throughput below zero.
func TestWorkerReadyTooLate(t *testing.T) {
	const n = 100
	env, err := bench.StartEnv(t.Context(), "", 0)
	require.NoError(t, err)
	defer env.Close()
	_, err = bench.Run(t.Context(), env, bench.Scenario{Mode: bench.ModeFloor, Concurrency: 8, N: n}, func() bench.Worker { return &lateWorker{n: n} })
	require.ErrorContains(t, err, "events came before the workers said ready")
}

// TestWorkerThatNeverSaysReady: a worker process (a peer, say) that never
// prints its ready line is killed after StartTimeout, and the run fails
// with the reason instead of waiting for ever.
func TestWorkerThatNeverSaysReady(t *testing.T) {
	script := filepath.Join(t.TempDir(), "silent-peer")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755))
	w := &bench.ProcessWorker{Executable: script, StartTimeout: 300 * time.Millisecond}
	start := time.Now()
	err := w.Start(t.Context(), bench.Scenario{Mode: "silent", Concurrency: 1, N: 1}, &bench.Env{})
	require.ErrorContains(t, err, "worker did not say ready within 300ms")
	assert.Less(t, time.Since(start), 10*time.Second, "killed, not waited for")
}
