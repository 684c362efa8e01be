package bench_test

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/bench"
	"github.com/contactrelay/contactrelay/internal/provision"
)

// BenchmarkPipeline is the short variant of 'consumer bench', for
// benchstat: the floor and contactrelay, in process, on an embedded
// server, each turning a backlog of b.N commands (at least 500) into
// events. Compare cmd/s and the ratio between the two modes; ns/op includes
// publishing the backlog and starting the consumer.
func BenchmarkPipeline(b *testing.B) {
	for _, mode := range []string{bench.ModeFloor, bench.ModeFloorRecords, bench.ModeRelay} {
		b.Run(mode, func(b *testing.B) {
			env, err := bench.StartEnv(b.Context(), "", 0)
			if err != nil {
				b.Fatal(err)
			}
			defer env.Close()
			s := bench.Scenario{Mode: mode, Concurrency: 64, N: max(b.N, 500)}
			r, err := bench.Run(b.Context(), env, s, func() bench.Worker { return &bench.GoroutineWorker{} })
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(r.Throughput, "cmd/s")
			b.ReportMetric(r.P99Ms, "p99-ms")
		})
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
