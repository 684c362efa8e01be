package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/contactrelay/contactrelay/internal/exit"
)

// Options are 'consumer bench”s: what to measure and how. Lists
// (Concurrency, Instances, Modes) are comma lists, as the flags take them.
type Options struct {
	N           int
	Latency     time.Duration
	Concurrency string
	Instances   string
	Modes       string
	Runs        int
	Rate        float64
	HalfRate    bool
	// NATSURL is an external server; empty: an embedded one per run.
	NATSURL string
	// JSON, when set, is a file the results are also written to.
	JSON string
	// InProcess runs the consumers as goroutines; otherwise each is a
	// process ('consumer bench-worker'), profiled into ProfileDir when
	// set, pinned to WorkerCPUs when set, its logs appended to WorkerLog
	// when set.
	InProcess  bool
	ProfileDir string
	WorkerCPUs string
	WorkerLog  string
	// Peers are other consumers measured beside the modes, each
	// "NAME=EXECUTABLE": mode NAME is EXECUTABLE run as a worker process
	// ('EXECUTABLE bench-worker --mode NAME ...', the protocol of
	// RunWorkerProcess). A peer that Modes does not name is measured
	// after the modes it names.
	Peers []string
}

// Measure is 'consumer bench': every scenario the options make, measured and
// printed as a table on stdout, progress on stderr. A bad list exits 2.
func Measure(ctx context.Context, o Options, stdout, stderr io.Writer) error {
	concs, err := positiveInts("concurrency", o.Concurrency)
	if err != nil {
		return err
	}
	insts, err := positiveInts("instances", o.Instances)
	if err != nil {
		return err
	}
	peers, peerNames, err := parsePeers(o.Peers)
	if err != nil {
		return err
	}
	if len(peers) > 0 && o.InProcess {
		return &exit.Error{Code: 2, Err: errors.New("--in-process runs no peer: a peer is a process of its own")}
	}
	ms, err := modes(o.Modes, peers, peerNames)
	if err != nil {
		return err
	}
	if o.ProfileDir != "" {
		// The worker writes its profiles there: a folder that does not
		// exist would make it die at start with nothing to say why.
		if err := os.MkdirAll(o.ProfileDir, 0o755); err != nil {
			return fmt.Errorf("--profile: %w", err)
		}
	}
	logs, err := openWorkerLog(o.WorkerLog)
	if err != nil {
		return err
	}
	if logs != nil {
		defer logs.Close()
	}
	b := &Benchmark{Runs: o.Runs, NATSURL: o.NATSURL, Progress: stderr, NewWorker: func() Worker {
		if o.InProcess {
			return &GoroutineWorker{Logs: logs}
		}
		return &ProcessWorker{ProfileDir: o.ProfileDir, CPUs: o.WorkerCPUs, Logs: logs, Peers: peers}
	}}
	var results []Result
	for _, s := range Scenarios(concs, insts, ms, Scenario{Latency: o.Latency, N: o.N, Rate: o.Rate}) {
		rs, err := b.MeasureAndHalf(ctx, s, o.HalfRate)
		if err != nil {
			return err
		}
		results = append(results, rs...)
	}
	WriteTable(stdout, results)
	if o.JSON != "" {
		out, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(o.JSON, append(out, '\n'), 0o644); err != nil {
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

// modes parses --modes: the built-in modes and the peers' names, in the
// order given, then the peers it does not name, in the order of --peer.
func modes(list string, peers map[string]string, peerNames []string) ([]string, error) {
	var out []string
	for _, m := range strings.Split(list, ",") {
		m = strings.TrimSpace(m)
		switch _, peer := peers[m]; {
		case m == ModeFloor, m == ModeFloorRecords, m == ModeRelay, peer:
			out = append(out, m)
		default:
			known := "floor, floor+records or contactrelay"
			if len(peerNames) > 0 {
				known = "floor, floor+records, contactrelay or a --peer (" + strings.Join(peerNames, ", ") + ")"
			}
			return nil, &exit.Error{Code: 2, Err: fmt.Errorf("--modes: %q is not %s", m, known)}
		}
	}
	for _, name := range peerNames {
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

// parsePeers parses the --peer values, NAME=EXECUTABLE each: the
// executable of each name, and the names in the order given. A name is
// new, not a built-in mode, and fit for --modes and a file name; the
// executable is found (a path, or a name on PATH).
func parsePeers(vals []string) (map[string]string, []string, error) {
	peers := map[string]string{}
	var names []string
	for _, v := range vals {
		name, exe, ok := strings.Cut(v, "=")
		name = strings.TrimSpace(name)
		bad := func(why string) error {
			return &exit.Error{Code: 2, Err: fmt.Errorf("--peer %q: %s", v, why)}
		}
		switch {
		case !ok || name == "" || exe == "":
			return nil, nil, bad("want NAME=EXECUTABLE")
		case name == ModeFloor || name == ModeFloorRecords || name == ModeRelay:
			return nil, nil, bad("the name of a built-in mode")
		case strings.ContainsAny(name, ",/\\ \t"):
			return nil, nil, bad("a name has no comma, slash or space")
		case peers[name] != "":
			return nil, nil, bad("a second peer of that name")
		}
		if _, err := exec.LookPath(exe); err != nil {
			return nil, nil, bad(err.Error())
		}
		peers[name] = exe
		names = append(names, name)
	}
	return peers, names, nil
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

// WorkerOptions are 'consumer bench-worker”s.
type WorkerOptions struct {
	Mode, NATSURL, ProviderURL string
	Concurrency                int
	// CPUProfile, when set, is a file the worker's CPU profile is
	// written to; AllocProfile one its heap allocation profile (every
	// allocation since it started, sampled) is written to when it stops.
	CPUProfile   string
	AllocProfile string
}

// WorkerFlags defines the flags of 'bench-worker' on fs, which the bench
// passes to every worker process (its own and a peer's); the options are
// filled as fs parses.
func WorkerFlags(fs *flag.FlagSet) *WorkerOptions {
	o := &WorkerOptions{}
	fs.StringVar(&o.Mode, "mode", ModeRelay, "floor, floor+records or contactrelay")
	fs.StringVar(&o.NATSURL, "nats", "", "NATS URL")
	fs.StringVar(&o.ProviderURL, "provider", "", "provider stand-in URL")
	fs.IntVar(&o.Concurrency, "concurrency", 64, "CONCURRENCY")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile to this file")
	fs.StringVar(&o.AllocProfile, "allocprofile", "", "write a heap allocation profile to this file when stopped")
	return o
}

// RunWorkerProcess is 'consumer bench-worker', the consumer side of a
// benchmark run in a process of its own: it prints "ready" once it
// consumes, runs until stdin closes, then prints its peak memory and CPU
// time, and the heap allocations it made while consuming, as JSON
// (WorkerStats).
func RunWorkerProcess(ctx context.Context, o WorkerOptions, stdin io.Reader, stdout, stderr io.Writer) error {
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
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
	// The allocations counted are those made between "ready" and the
	// close of stdin: the measured commands, not the start or the stop.
	var (
		mu            sync.Mutex
		first, last   runtime.MemStats
		started, done bool
	)
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		mu.Lock()
		runtime.ReadMemStats(&last)
		done = true
		mu.Unlock()
		cancel()
	}()
	ready := func() {
		mu.Lock()
		runtime.ReadMemStats(&first)
		started = true
		mu.Unlock()
		fmt.Fprintln(stdout, "ready")
	}
	if err := RunWorker(ctx, o.Mode, o.NATSURL, o.ProviderURL, o.Concurrency, stderr, ready); err != nil {
		return err
	}
	if o.AllocProfile != "" {
		if err := writeAllocProfile(o.AllocProfile); err != nil {
			return err
		}
	}
	st := WorkerStats{PeakRSS: PeakRSS(), CPU: CPUTime()}
	mu.Lock()
	if started && done {
		st.Mallocs, st.AllocBytes = last.Mallocs-first.Mallocs, last.TotalAlloc-first.TotalAlloc
	}
	mu.Unlock()
	return json.NewEncoder(stdout).Encode(st)
}

// writeAllocProfile writes the heap profile of every allocation since the
// process started ('go tool pprof -sample_index=alloc_space').
func writeAllocProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
