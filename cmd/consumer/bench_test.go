package main

import (
	"testing"

	"github.com/contactrelay/contactrelay/internal/bench"
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
			r, err := bench.Run(b.Context(), env, s, func() bench.Worker { return &goroutineWorker{} })
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(r.Throughput, "cmd/s")
			b.ReportMetric(r.P99Ms, "p99-ms")
		})
	}
}
