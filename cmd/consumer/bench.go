package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/contactrelay/contactrelay/internal/bench"
	"github.com/contactrelay/contactrelay/internal/exit"
)

// benchCommand is 'consumer bench': contactrelay against the bare-loop
// floor, on one NATS server and one provider stand-in. See docs/PERFORMANCE.md.
func benchCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("consumer bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		n           = fs.Int("n", 20000, "commands per run")
		latency     = fs.Duration("latency", 0, "provider stand-in latency")
		concurrency = fs.String("concurrency", "256", "CONCURRENCY; a comma list (16,32,...) measures a curve")
		modes       = fs.String("modes", "floor,contactrelay", "what to measure, a comma list of floor, floor+records (the floor with the two record writes the guarantees take) and contactrelay")
		runs        = fs.Int("runs", 1, "runs of each measurement; medians are reported")
		rate        = fs.Float64("rate", 0, "publish at this rate (commands/s) while consuming, instead of a backlog; 'half' finds the maximum first")
		half        = fs.Bool("half-rate", false, "measure latency at half of each mode's maximum throughput (runs the backlog first)")
		natsURL     = fs.String("nats", "", "an external NATS server (default: embedded, on a fresh store per run)")
		jsonOut     = fs.String("json", "", "also write the results as JSON to this file")
		inProcess   = fs.Bool("in-process", false, "run the consumers as goroutines (no memory figure)")
		profileDir  = fs.String("profile", "", "write each worker's CPU profile into this folder")
		instances   = fs.String("instances", "1", "consumer instances sharing the durable; a comma list (1,2,3) measures each")
		workerCPUs  = fs.String("worker-cpus", "", "run the consumers on these CPUs (taskset list, e.g. 1), to keep them apart from the server")
		workerLog   = fs.String("worker-log", "", "append the consumers' logs to this file (default: dropped)")
	)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	concs, err := positiveInts("concurrency", *concurrency)
	if err != nil {
		return err
	}
	insts, err := positiveInts("instances", *instances)
	if err != nil {
		return err
	}
	ms, err := benchModes(*modes)
	if err != nil {
		return err
	}
	logs, err := openWorkerLog(*workerLog)
	if err != nil {
		return err
	}
	if logs != nil {
		defer logs.Close()
	}
	b := &bench.Benchmark{Runs: *runs, NATSURL: *natsURL, Progress: stderr, NewWorker: func() bench.Worker {
		if *inProcess {
			return &bench.GoroutineWorker{Logs: logs}
		}
		return &bench.ProcessWorker{ProfileDir: *profileDir, CPUs: *workerCPUs, Logs: logs}
	}}

	var results []bench.Result
	for _, s := range bench.Scenarios(concs, insts, ms, bench.Scenario{Latency: *latency, N: *n, Rate: *rate}) {
		rs, err := b.MeasureAndHalf(ctx, s, *half)
		if err != nil {
			return err
		}
		results = append(results, rs...)
	}
	bench.WriteTable(stdout, results)
	if *jsonOut != "" {
		out, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(*jsonOut, append(out, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// positiveInts parses the comma list of positive numbers that flag name
// was given.
func positiveInts(name, list string) ([]int, error) {
	var out []int
	for _, c := range strings.Split(list, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || v < 1 {
			return nil, &exit.Error{Code: 2, Err: fmt.Errorf("--%s: %q is not a positive number", name, c)}
		}
		out = append(out, v)
	}
	return out, nil
}

// benchModes parses --modes.
func benchModes(list string) ([]string, error) {
	var out []string
	for _, m := range strings.Split(list, ",") {
		switch m = strings.TrimSpace(m); m {
		case bench.ModeFloor, bench.ModeFloorRecords, bench.ModeRelay:
			out = append(out, m)
		default:
			return nil, &exit.Error{Code: 2, Err: fmt.Errorf("--modes: %q is not floor, floor+records or contactrelay", m)}
		}
	}
	return out, nil
}

// openWorkerLog opens --worker-log for appending; nil, for "", means the
// consumers' logs are dropped.
func openWorkerLog(path string) (*os.File, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, &exit.Error{Code: 2, Err: fmt.Errorf("--worker-log: %w", err)}
	}
	return f, nil
}

// benchWorkerCommand is 'consumer bench-worker', the consumer side of a
// benchmark run in a process of its own: it prints "ready" once it
// consumes, runs until its standard input closes, then prints its peak
// memory as JSON.
func benchWorkerCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("consumer bench-worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mode := fs.String("mode", bench.ModeRelay, "floor, floor+records or contactrelay")
	natsURL := fs.String("nats", "", "NATS URL")
	provider := fs.String("provider", "", "provider stand-in URL")
	concurrency := fs.Int("concurrency", 64, "CONCURRENCY")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _, _ = io.Copy(io.Discard, stdin); cancel() }()
	ready := func() { fmt.Fprintln(stdout, "ready") }
	if err := bench.RunWorker(ctx, *mode, *natsURL, *provider, *concurrency, stderr, ready); err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(bench.WorkerStats{PeakRSS: bench.PeakRSS(), CPU: bench.CPUTime()})
}
