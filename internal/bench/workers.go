package bench

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
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/contactrelay/contactrelay/internal/config"
	"github.com/contactrelay/contactrelay/internal/providers"
	"github.com/contactrelay/contactrelay/internal/service"
)

// Scenarios is every combination of concurrency, instances and mode,
// in that order of nesting, on the settings of base.
func Scenarios(concs, insts []int, modes []string, base Scenario) []Scenario {
	var out []Scenario
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

// Benchmark measures scenarios, each Runs times on an environment of its
// own, and reports each run to Progress as it ends.
type Benchmark struct {
	Runs      int
	NATSURL   string // "": an embedded server per run
	NewWorker func() Worker
	Progress  io.Writer
}

// MeasureAndHalf measures s and, with half for a backlog, s again at half
// the throughput it reached.
func (b *Benchmark) MeasureAndHalf(ctx context.Context, s Scenario, half bool) ([]Result, error) {
	r, err := b.measure(ctx, s)
	if err != nil {
		return nil, err
	}
	if !half || s.Rate != 0 {
		return []Result{r}, nil
	}
	s.Rate = r.Throughput / 2
	hr, err := b.measure(ctx, s)
	if err != nil {
		return nil, err
	}
	return []Result{r, hr}, nil
}

// measure runs s b.Runs times and returns the median.
func (b *Benchmark) measure(ctx context.Context, s Scenario) (Result, error) {
	var rs []Result
	for range b.Runs {
		env, err := StartEnv(ctx, b.NATSURL, s.Latency)
		if err != nil {
			return Result{}, err
		}
		r, err := Run(ctx, env, s, b.NewWorker)
		env.Close()
		if err != nil {
			return Result{}, fmt.Errorf("%s c=%d: %w", s.Mode, s.Concurrency, err)
		}
		fmt.Fprintf(b.Progress, "  %s x%d c=%d n=%d: %.0f/s p50 %.1fms p99 %.1fms rss %.0fMiB cpu/cmd worker %.0fµs env %.0fµs worker allocs/cmd %.0f (%.0f B)\n",
			s.Mode, max(s.Instances, 1), s.Concurrency, s.N, r.Throughput, r.P50Ms, r.P99Ms, float64(r.PeakRSS)/(1<<20), r.WorkerCPUus, r.EnvCPUus, r.WorkerAllocs, r.WorkerBytes)
		rs = append(rs, r)
	}
	return Median(rs), nil
}

// WriteTable writes the results as a table, each throughput beside its
// floor's.
func WriteTable(w io.Writer, rs []Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tinstances\tlatency\tconcurrency\tn\trate\tcmd/s\tp50 ms\tp99 ms\tpeak RSS MiB\tworker µs/cmd\tenv µs/cmd\tworker allocs/cmd\tworker B/cmd\tvs floor\t")
	floor := map[string]float64{}
	for _, r := range rs {
		if r.Mode == ModeFloor && r.Rate == 0 {
			floor[fmt.Sprint(r.Latency, r.Concurrency, r.Instances, r.N)] = r.Throughput
		}
	}
	for _, r := range rs {
		ratio := "-"
		if f := floor[fmt.Sprint(r.Latency, r.Concurrency, r.Instances, r.N)]; f > 0 && r.Mode != ModeFloor && r.Rate == 0 {
			ratio = fmt.Sprintf("%.2f", r.Throughput/f)
		}
		rate := "backlog"
		if r.Rate > 0 {
			rate = fmt.Sprintf("%.0f/s", r.Rate)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\t%.0f\t%.1f\t%.1f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%s\t\n", r.Mode, max(r.Instances, 1), r.Latency, r.Concurrency, r.N, rate,
			r.Throughput, r.P50Ms, r.P99Ms, float64(r.PeakRSS)/(1<<20), r.WorkerCPUus, r.EnvCPUus, r.WorkerAllocs, r.WorkerBytes, ratio)
	}
	tw.Flush()
}

// RunWorker runs one consumer of a benchmark until ctx is done, in mode
// (the floor, the floor with records, or the service itself with
// concurrency, on natsURL and the provider stand-in at providerURL), its
// logs on logTo; ready is called once it consumes.
func RunWorker(ctx context.Context, mode, natsURL, providerURL string, concurrency int, logTo io.Writer, ready func()) error {
	switch mode {
	case ModeFloor, ModeFloorRecords:
		ready()
		return Floor(ctx, natsURL, providerURL, concurrency, mode == ModeFloorRecords)
	case ModeRelay:
	default:
		// A peer's name, say, given to this executable: running
		// contactrelay under another name would measure the wrong consumer.
		return fmt.Errorf("mode %q is not floor, floor+records or contactrelay", mode)
	}
	env := map[string]string{
		"NATS_URL":                 natsURL,
		"INSTANTPAY_BASE_URL":      providerURL,
		"INSTANTPAY_CLIENT_ID":     ClientID,
		"INSTANTPAY_CLIENT_SECRET": ClientSecret,
		"CONCURRENCY":              strconv.Itoa(concurrency),
		"HTTP_ADDR":                "off",
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	load := config.Flags(fs, func(k string) string { return env[k] }, providers.Settings(), func(config.Setting) bool { return true }, nil)
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

// ProcessWorker runs the consumer as 'consumer bench-worker' (this
// executable) in a child process, so that its peak memory is its own.
type ProcessWorker struct {
	// ProfileDir, if set, gets each worker's CPU profile and its heap
	// allocation profile.
	ProfileDir string
	CPUs       string   // taskset CPU list, or "" for any
	Logs       *os.File // where its logs go; nil drops them
	// Executable runs 'bench-worker'; empty means this executable.
	// Env is added to the child's environment.
	Executable string
	Env        []string
	// StartTimeout bounds the wait for the worker's "ready" line;
	// default DefaultStartTimeout.
	StartTimeout time.Duration
	// Peers maps a mode to the executable run instead for that mode
	// (Options.Peers), given the same arguments.
	Peers map[string]string

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
}

// Start starts the child process and waits until it consumes.
func (w *ProcessWorker) Start(ctx context.Context, s Scenario, env *Env) error {
	self := w.Executable
	if exe, ok := w.Peers[s.Mode]; ok {
		self = exe
	}
	if self == "" {
		var err error
		if self, err = os.Executable(); err != nil {
			return err
		}
	}
	args := []string{"bench-worker", "--mode", s.Mode, "--nats", env.NATSURL,
		"--provider", env.ProviderURL, "--concurrency", strconv.Itoa(s.Concurrency)}
	if w.ProfileDir != "" {
		name := filepath.Join(w.ProfileDir, fmt.Sprintf("%s-c%d-l%s", s.Mode, s.Concurrency, s.Latency))
		args = append(args, "--cpuprofile", name+".prof", "--allocprofile", name+"-allocs.prof")
	}
	if w.CPUs != "" {
		args = append([]string{"-c", w.CPUs, self}, args...)
		self = "taskset"
	}
	w.cmd = exec.CommandContext(ctx, self, args...)
	if len(w.Env) > 0 {
		w.cmd.Env = append(os.Environ(), w.Env...)
	}
	if w.Logs != nil {
		w.cmd.Stderr = w.Logs
	}
	var err error
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
	type readLine struct {
		line string
		err  error
	}
	read := make(chan readLine, 1)
	go func() {
		line, err := w.stdout.ReadString('\n')
		read <- readLine{line, err}
	}()
	timeout := w.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-read:
		if r.err != nil || strings.TrimSpace(r.line) != "ready" {
			_ = w.cmd.Process.Kill()
			_ = w.cmd.Wait()
			return fmt.Errorf("worker did not start: %q %v", r.line, r.err)
		}
		return nil
	case <-t.C:
		_ = w.cmd.Process.Kill()
		_ = w.cmd.Wait()
		return fmt.Errorf("worker did not say ready within %s", timeout)
	}
}

// DefaultStartTimeout is how long a worker process has to say it is
// ready.
const DefaultStartTimeout = time.Minute

// Stop closes the child's standard input and returns what it measured.
func (w *ProcessWorker) Stop() (WorkerStats, error) {
	w.stdin.Close()
	var v WorkerStats
	err := json.NewDecoder(w.stdout).Decode(&v)
	if werr := w.cmd.Wait(); err == nil {
		err = werr
	}
	return v, err
}

// GoroutineWorker runs the consumer in this process.
type GoroutineWorker struct {
	Logs   *os.File // where its logs go; nil drops them
	cancel context.CancelFunc
	done   chan error
}

// Start runs the consumer in a goroutine and waits until it consumes.
func (w *GoroutineWorker) Start(ctx context.Context, s Scenario, env *Env) error {
	ctx, w.cancel = context.WithCancel(ctx)
	w.done = make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		var logTo io.Writer = io.Discard
		if w.Logs != nil {
			logTo = w.Logs
		}
		w.done <- RunWorker(ctx, s.Mode, env.NATSURL, env.ProviderURL, s.Concurrency, logTo, func() { close(ready) })
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

// Stop stops the consumer.
func (w *GoroutineWorker) Stop() (WorkerStats, error) {
	w.cancel()
	return WorkerStats{}, <-w.done
}
