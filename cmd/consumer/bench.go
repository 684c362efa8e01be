package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/contactrelay/contactrelay/internal/bench"
	"github.com/contactrelay/contactrelay/internal/config"
	"github.com/contactrelay/contactrelay/internal/exit"
	"github.com/contactrelay/contactrelay/internal/service"
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
	b := &benchmark{runs: *runs, natsURL: *natsURL, progress: stderr, newWorker: func() bench.Worker {
		if *inProcess {
			return &goroutineWorker{logs: logs}
		}
		return &processWorker{profileDir: *profileDir, cpus: *workerCPUs, logs: logs}
	}}

	var results []bench.Result
	for _, s := range benchScenarios(concs, insts, ms, bench.Scenario{Latency: *latency, N: *n, Rate: *rate}) {
		rs, err := b.measureAndHalf(ctx, s, *half)
		if err != nil {
			return err
		}
		results = append(results, rs...)
	}
	printResults(stdout, results)
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

// benchScenarios is every combination of concurrency, instances and mode,
// in that order of nesting, on the settings of base.
func benchScenarios(concs, insts []int, modes []string, base bench.Scenario) []bench.Scenario {
	var out []bench.Scenario
	for _, c := range concs {
		for _, inst := range insts {
			for _, m := range modes {
				s := base
				s.Mode, s.Concurrency, s.Instances = m, c, inst
				out = append(out, s)
			}
		}
	}
	return out
}

// benchmark measures scenarios, each runs times on an environment of its
// own, and reports each run to progress as it ends.
type benchmark struct {
	runs      int
	natsURL   string // "": an embedded server per run
	newWorker func() bench.Worker
	progress  io.Writer
}

// measureAndHalf measures s and, with half for a backlog, s again at half
// the throughput it reached.
func (b *benchmark) measureAndHalf(ctx context.Context, s bench.Scenario, half bool) ([]bench.Result, error) {
	r, err := b.measure(ctx, s)
	if err != nil {
		return nil, err
	}
	if !half || s.Rate != 0 {
		return []bench.Result{r}, nil
	}
	s.Rate = r.Throughput / 2
	hr, err := b.measure(ctx, s)
	if err != nil {
		return nil, err
	}
	return []bench.Result{r, hr}, nil
}

// measure runs s b.runs times and returns the median.
func (b *benchmark) measure(ctx context.Context, s bench.Scenario) (bench.Result, error) {
	var rs []bench.Result
	for range b.runs {
		env, err := bench.StartEnv(ctx, b.natsURL, s.Latency)
		if err != nil {
			return bench.Result{}, err
		}
		r, err := bench.Run(ctx, env, s, b.newWorker)
		env.Close()
		if err != nil {
			return bench.Result{}, fmt.Errorf("%s c=%d: %w", s.Mode, s.Concurrency, err)
		}
		fmt.Fprintf(b.progress, "  %s x%d c=%d n=%d: %.0f/s p50 %.1fms p99 %.1fms rss %.0fMiB cpu/cmd worker %.0fµs env %.0fµs\n",
			s.Mode, max(s.Instances, 1), s.Concurrency, s.N, r.Throughput, r.P50Ms, r.P99Ms, float64(r.PeakRSS)/(1<<20), r.WorkerCPUus, r.EnvCPUus)
		rs = append(rs, r)
	}
	return bench.Median(rs), nil
}

func printResults(w io.Writer, rs []bench.Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tinstances\tlatency\tconcurrency\tn\trate\tcmd/s\tp50 ms\tp99 ms\tpeak RSS MiB\tworker µs/cmd\tenv µs/cmd\tvs floor\t")
	floor := map[string]float64{}
	for _, r := range rs {
		if r.Mode == bench.ModeFloor && r.Rate == 0 {
			floor[fmt.Sprint(r.Latency, r.Concurrency, r.Instances, r.N)] = r.Throughput
		}
	}
	for _, r := range rs {
		ratio := "-"
		if f := floor[fmt.Sprint(r.Latency, r.Concurrency, r.Instances, r.N)]; f > 0 && r.Mode != bench.ModeFloor && r.Rate == 0 {
			ratio = fmt.Sprintf("%.2f", r.Throughput/f)
		}
		rate := "backlog"
		if r.Rate > 0 {
			rate = fmt.Sprintf("%.0f/s", r.Rate)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\t%.0f\t%.1f\t%.1f\t%.0f\t%.0f\t%.0f\t%s\t\n", r.Mode, max(r.Instances, 1), r.Latency, r.Concurrency, r.N, rate,
			r.Throughput, r.P50Ms, r.P99Ms, float64(r.PeakRSS)/(1<<20), r.WorkerCPUus, r.EnvCPUus, ratio)
	}
	tw.Flush()
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
	if err := runWorker(ctx, *mode, *natsURL, *provider, *concurrency, stderr, ready); err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(bench.WorkerStats{PeakRSS: bench.PeakRSS(), CPU: bench.CPUTime()})
}

// runWorker runs one consumer of a benchmark until ctx is done.
func runWorker(ctx context.Context, mode, natsURL, providerURL string, concurrency int, logTo io.Writer, ready func()) error {
	if mode == bench.ModeFloor || mode == bench.ModeFloorRecords {
		ready()
		return bench.Floor(ctx, natsURL, providerURL, concurrency, mode == bench.ModeFloorRecords)
	}
	env := map[string]string{
		"NATS_URL":                 natsURL,
		"INSTANTPAY_BASE_URL":      providerURL,
		"INSTANTPAY_CLIENT_ID":     bench.ClientID,
		"INSTANTPAY_CLIENT_SECRET": bench.ClientSecret,
		"CONCURRENCY":              strconv.Itoa(concurrency),
		"HTTP_ADDR":                "off",
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	load := configFlags(fs, func(k string) string { return env[k] })
	cfg, err := load()
	if err != nil {
		return err
	}
	log := config.NewLogger(logTo, cfg.LogLevel, cfg.LogFormat) // the service's own logging, at its default level
	svc, err := service.New(cfg, log, service.Hooks{Started: func(string) { ready() }})
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}

// processWorker runs the consumer as 'consumer bench-worker' in a child
// process, so that its peak memory is its own.
type processWorker struct {
	profileDir string
	cpus       string   // taskset CPU list, or "" for any
	logs       *os.File // where its logs go; nil drops them
	cmd        *exec.Cmd
	stdin      io.WriteCloser
	stdout     *bufio.Reader
}

func (w *processWorker) Start(ctx context.Context, s bench.Scenario, env *bench.Env) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"bench-worker", "--mode", s.Mode, "--nats", env.NATSURL,
		"--provider", env.ProviderURL, "--concurrency", strconv.Itoa(s.Concurrency)}
	if w.profileDir != "" {
		args = append(args, "--cpuprofile", filepath.Join(w.profileDir, fmt.Sprintf("%s-c%d-l%s.prof", s.Mode, s.Concurrency, s.Latency)))
	}
	if w.cpus != "" {
		args = append([]string{"-c", w.cpus, self}, args...)
		self = "taskset"
	}
	w.cmd = exec.CommandContext(ctx, self, args...)
	if w.logs != nil {
		w.cmd.Stderr = w.logs
	}
	if w.stdin, err = w.cmd.StdinPipe(); err != nil {
		return err
	}
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	w.stdout = bufio.NewReader(out)
	if err := w.cmd.Start(); err != nil {
		return err
	}
	line, err := w.stdout.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		_ = w.cmd.Process.Kill()
		return fmt.Errorf("worker did not start: %q %v", line, err)
	}
	return nil
}

func (w *processWorker) Stop() (bench.WorkerStats, error) {
	w.stdin.Close()
	var v bench.WorkerStats
	err := json.NewDecoder(w.stdout).Decode(&v)
	if werr := w.cmd.Wait(); err == nil {
		err = werr
	}
	return v, err
}

// goroutineWorker runs the consumer in this process.
type goroutineWorker struct {
	logs   *os.File // where its logs go; nil drops them
	cancel context.CancelFunc
	done   chan error
}

func (w *goroutineWorker) Start(ctx context.Context, s bench.Scenario, env *bench.Env) error {
	ctx, w.cancel = context.WithCancel(ctx)
	w.done = make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		var logTo io.Writer = io.Discard
		if w.logs != nil {
			logTo = w.logs
		}
		w.done <- runWorker(ctx, s.Mode, env.NATSURL, env.ProviderURL, s.Concurrency, logTo, func() { close(ready) })
	}()
	select {
	case <-ready:
		return nil
	case err := <-w.done:
		return fmt.Errorf("worker stopped: %w", err)
	case <-time.After(30 * time.Second):
		w.cancel()
		return errors.New("worker did not start")
	}
}

func (w *goroutineWorker) Stop() (bench.WorkerStats, error) {
	w.cancel()
	return bench.WorkerStats{}, <-w.done
}
