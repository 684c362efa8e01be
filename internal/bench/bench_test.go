package bench_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/bench"
	"github.com/contactrelay/contactrelay/internal/provision"
)

// workerEnv, set in a child's environment, makes this test binary a
// benchmark worker ('consumer bench-worker'), so that BenchmarkPipeline
// counts the consumer's allocations apart from the server's.
const workerEnv = "CONTACTRELAY_BENCH_TEST_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "1" && len(os.Args) > 1 && os.Args[1] == "bench-worker" {
		fs := flag.NewFlagSet("bench-worker", flag.ExitOnError)
		var o bench.WorkerOptions
		fs.StringVar(&o.Mode, "mode", bench.ModeRelay, "")
		fs.StringVar(&o.NATSURL, "nats", "", "")
		fs.StringVar(&o.ProviderURL, "provider", "", "")
		fs.IntVar(&o.Concurrency, "concurrency", 64, "")
		fs.StringVar(&o.CPUProfile, "cpuprofile", "", "")
		fs.StringVar(&o.AllocProfile, "allocprofile", "", "")
		_ = fs.Parse(os.Args[2:])
		if err := bench.RunWorkerProcess(context.Background(), o, os.Stdin, os.Stdout, io.Discard); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
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
