package main

import (
	"context"
	"flag"
	"io"

	"github.com/contactrelay/contactrelay/internal/bench"
)

// benchCommand is 'consumer bench': contactrelay against the bare-loop
// floor, on one NATS server and one provider stand-in. See docs/PERFORMANCE.md.
func benchCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("consumer bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o bench.Options
	fs.IntVar(&o.N, "n", 20000, "commands per run")
	fs.DurationVar(&o.Latency, "latency", 0, "provider stand-in latency")
	fs.StringVar(&o.Concurrency, "concurrency", "256", "CONCURRENCY; a comma list (16,32,...) measures a curve")
	fs.StringVar(&o.Modes, "modes", "floor,contactrelay", "what to measure, a comma list of floor, floor+records (the floor with the two record writes the guarantees take), contactrelay and the names of --peers")
	fs.IntVar(&o.Runs, "runs", 1, "runs of each measurement; medians are reported")
	fs.Float64Var(&o.Rate, "rate", 0, "publish at this rate (commands/s) while consuming, instead of a backlog; 'half' finds the maximum first")
	fs.BoolVar(&o.HalfRate, "half-rate", false, "measure latency at half of each mode's maximum throughput (runs the backlog first)")
	fs.StringVar(&o.NATSURL, "nats", "", "an external NATS server (default: embedded, on a fresh store per run)")
	fs.StringVar(&o.JSON, "json", "", "also write the results as JSON to this file")
	fs.BoolVar(&o.InProcess, "in-process", false, "run the consumers as goroutines (no memory figure)")
	fs.StringVar(&o.ProfileDir, "profile", "", "write each worker's CPU profile and heap allocation profile into this folder")
	fs.StringVar(&o.Instances, "instances", "1", "consumer instances sharing the durable; a comma list (1,2,3) measures each")
	fs.StringVar(&o.WorkerCPUs, "worker-cpus", "", "run the consumers on these CPUs (taskset list, e.g. 1), to keep them apart from the server")
	fs.StringVar(&o.WorkerLog, "worker-log", "", "append the consumers' logs to this file (default: dropped)")
	fs.Func("peer", "also measure `NAME=EXECUTABLE`, another consumer, as mode NAME: 'EXECUTABLE bench-worker --mode NAME ...' (the worker protocol in docs/PERFORMANCE.md); repeatable, NAME usable in --modes", func(v string) error {
		o.Peers = append(o.Peers, v)
		return nil
	})
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return bench.Measure(ctx, o, stdout, stderr)
}

// benchWorkerCommand is 'consumer bench-worker', the consumer side of a
// benchmark run in a process of its own (bench.RunWorkerProcess).
func benchWorkerCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("consumer bench-worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := bench.WorkerFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return bench.RunWorkerProcess(ctx, *o, stdin, stdout, stderr)
}
