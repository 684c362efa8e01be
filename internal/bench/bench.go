// Package bench measures how fast contactrelay turns a backlog of commands
// into contacts and events, against a floor: a bare nats.go loop that does
// the least a correct consumer must do per command. Both run on the same
// NATS server and the same provider stand-in, with the same concurrency;
// the figures are throughput, end-to-end latency (published → terminal
// event) and the worker's peak memory.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/provision"
	"github.com/contactrelay/contactrelay/internal/sandbox"
)

// Credentials of the provider stand-in.
const (
	ClientID     = "bench-client"
	ClientSecret = "bench-secret"
)

// Modes of a worker.
const (
	ModeFloor        = "floor"
	ModeFloorRecords = "floor+records"
	ModeRelay        = "contactrelay"
)

// Scenario is one measurement.
type Scenario struct {
	Mode        string        `json:"mode"`
	Latency     time.Duration `json:"latency"`
	Concurrency int           `json:"concurrency"`
	// Instances consumers share the durable consumer, each with
	// Concurrency. Zero means one.
	Instances int `json:"instances,omitempty"`
	// N commands are published: as a backlog before the worker starts
	// when Rate is zero, else at Rate per second while it runs.
	N    int     `json:"n"`
	Rate float64 `json:"rate,omitempty"`
}

// Result is what a scenario measured.
type Result struct {
	Scenario
	Seconds    float64 `json:"seconds"`
	Throughput float64 `json:"commandsPerSecond"`
	P50Ms      float64 `json:"p50Ms"`
	P99Ms      float64 `json:"p99Ms"`
	// PeakRSS is the largest peak resident memory of one consumer.
	PeakRSS uint64 `json:"peakRssBytes"`
	Failed  int    `json:"failed"`
	// WorkerCPUus is the consumer's CPU time per command, and EnvCPUus
	// that of this process (the embedded NATS server, the provider
	// stand-in and the measuring), in microseconds: figures that a busy
	// machine disturbs less than throughput.
	WorkerCPUus float64 `json:"workerCpuMicrosPerCommand"`
	EnvCPUus    float64 `json:"envCpuMicrosPerCommand"`
	// WorkerAllocs and WorkerBytes are the consumer's heap allocations
	// per command (runtime.MemStats Mallocs and TotalAlloc, from the
	// moment it consumes to the moment it is stopped), where known: zero
	// for a worker run as a goroutine.
	WorkerAllocs float64 `json:"workerAllocsPerCommand"`
	WorkerBytes  float64 `json:"workerBytesPerCommand"`
}

// Env is the world a scenario runs in: a NATS server (embedded unless a URL
// was given) and an InstantPay stand-in with a fixed latency.
type Env struct {
	NATSURL     string
	ProviderURL string
	Provider    *sandbox.InstantPay
	nc          *nats.Conn
	js          jetstream.JetStream
	stop        []func()
}

// StartEnv starts an environment. natsURL empty means an embedded server
// with its store in a new temporary folder.
func StartEnv(ctx context.Context, natsURL string, latency time.Duration) (*Env, error) {
	e := &Env{}
	if natsURL == "" {
		dir, err := os.MkdirTemp("", "contactrelay-bench-")
		if err != nil {
			return nil, err
		}
		ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true, MaxPayload: 8 << 20})
		if err != nil {
			return nil, err
		}
		go ns.Start()
		if !ns.ReadyForConnections(10 * time.Second) {
			return nil, errors.New("embedded NATS did not start")
		}
		e.stop = append(e.stop, func() { ns.Shutdown(); ns.WaitForShutdown(); os.RemoveAll(dir) })
		natsURL = ns.ClientURL()
	}
	e.NATSURL = natsURL
	e.Provider = sandbox.NewInstantPay(sandbox.InstantPayConfig{ClientID: ClientID, ClientSecret: ClientSecret, Latency: latency})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.Close()
		return nil, err
	}
	srv := &http.Server{Handler: e.Provider, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	e.stop = append(e.stop, func() { e.Provider.Close(); _ = srv.Close() })
	e.ProviderURL = "http://" + ln.Addr().String()

	if e.nc, err = nats.Connect(natsURL); err != nil {
		e.Close()
		return nil, err
	}
	e.stop = append(e.stop, e.nc.Close)
	if e.js, err = jetstream.New(e.nc); err != nil {
		e.Close()
		return nil, err
	}
	// A clean slate: a previous run's commands must not count.
	for _, s := range []string{provision.CommandStream, provision.EventStream, "KV_" + provision.RecordBucket} {
		_ = e.js.DeleteStream(ctx, s)
	}
	if err := provision.Setup(ctx, e.js, provision.Topology{}); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// Close stops what StartEnv started, in reverse order.
func (e *Env) Close() {
	for i := len(e.stop) - 1; i >= 0; i-- {
		e.stop[i]()
	}
	e.stop = nil
}

// command returns command i of a run, stamped with the time it is sent.
func command(run string, i int) []byte {
	b, _ := json.Marshal(map[string]any{
		"commandId": fmt.Sprintf("%s-%d", run, i),
		"provider":  "instantpay",
		"name":      "Bench Contact",
		"email":     fmt.Sprintf("c%d@example.com", i),
		"mobile":    fmt.Sprintf("9%09d", i),
		"tagId":     "65a1b2c3d4e5f6a7b8c9d0e1",
		"metadata":  map[string]string{"sentAt": strconv.FormatInt(time.Now().UnixNano(), 10)},
	})
	return b
}

// publishWindow is how many of the backlog's publishes may await the
// stream's acknowledgement at once: well under the client's limit of
// pending asynchronous publishes (4,000), at which a publish stalls and,
// on a loaded machine, fails.
const publishWindow = 1024

// publish publishes commands lo..hi-1 asynchronously, at most
// publishWindow awaiting their acknowledgement at once, and waits for the
// stream to have them all.
func (e *Env) publish(ctx context.Context, run string, lo, hi int) error {
	futures := make([]jetstream.PubAckFuture, 0, hi-lo)
	acked := 0
	wait := func() error {
		f := futures[acked]
		acked++
		select {
		case <-f.Ok():
			return nil
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for i := lo; i < hi; i++ {
		if len(futures)-acked >= publishWindow {
			if err := wait(); err != nil {
				return err
			}
		}
		msg := nats.NewMsg(contact.SubjectCreate)
		msg.Data = command(run, i)
		f, err := e.js.PublishMsgAsync(msg)
		if err != nil {
			return err
		}
		futures = append(futures, f)
	}
	for acked < len(futures) {
		if err := wait(); err != nil {
			return err
		}
	}
	return nil
}

// outcomes watches terminal events and records each one's latency.
type outcomes struct {
	mu        sync.Mutex
	latencies []time.Duration
	failed    int
	n         atomic.Int64
	all       chan struct{}
	want      int64
	last      time.Time
}

func (o *outcomes) observe(m *nats.Msg) {
	now := time.Now()
	var ev struct {
		Type string `json:"type"`
		Data struct {
			Metadata map[string]string `json:"metadata"`
		} `json:"data"`
	}
	if json.Unmarshal(m.Data, &ev) != nil {
		return
	}
	sent, _ := strconv.ParseInt(ev.Data.Metadata["sentAt"], 10, 64)
	o.mu.Lock()
	o.latencies = append(o.latencies, now.Sub(time.Unix(0, sent)))
	if ev.Type != contact.SubjectCreated {
		o.failed++
	}
	o.last = now
	o.mu.Unlock()
	if o.n.Add(1) == o.want {
		close(o.all)
	}
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p)
	return sorted[i]
}

// Worker runs a consumer for a scenario until stopped: a process of its
// own (so that its memory can be measured apart) or a goroutine.
type Worker interface {
	// Start starts consuming; it returns once the worker consumes.
	Start(ctx context.Context, s Scenario, env *Env) error
	// Stop stops it and returns its peak resident memory and the CPU time
	// it used, where known.
	Stop() (WorkerStats, error)
}

// WorkerStats are what a worker process reports when it stops.
type WorkerStats struct {
	PeakRSS uint64        `json:"peakRssBytes"`
	CPU     time.Duration `json:"cpuNanos"`
	// Mallocs and AllocBytes are the heap allocations (count and bytes)
	// the worker made from the moment it consumed to the moment it was
	// stopped.
	Mallocs    uint64 `json:"mallocs"`
	AllocBytes uint64 `json:"allocBytes"`
}

// Run measures one scenario with s.Instances workers made by newWorker.
func Run(ctx context.Context, env *Env, s Scenario, newWorker func() Worker) (Result, error) {
	if s.Instances < 1 {
		s.Instances = 1
	}
	workers := make([]Worker, 0, s.Instances)
	w := workerGroup{workers: &workers}
	run := fmt.Sprintf("%s-%d", s.Mode, time.Now().UnixNano())
	o := &outcomes{want: int64(s.N), all: make(chan struct{}), latencies: make([]time.Duration, 0, s.N)}
	sub, err := env.nc.Subscribe("contact.*", func(m *nats.Msg) {
		if m.Subject != contact.SubjectCreate {
			o.observe(m)
		}
	})
	if err != nil {
		return Result{}, err
	}
	defer sub.Unsubscribe()
	_ = sub.SetPendingLimits(-1, -1)
	if err := env.nc.Flush(); err != nil {
		return Result{}, err
	}

	if s.Rate == 0 {
		if err := env.publish(ctx, run, 0, s.N); err != nil {
			return Result{}, fmt.Errorf("publish backlog: %w", err)
		}
	}
	envCPU := CPUTime()
	for range s.Instances {
		one := newWorker()
		if err := one.Start(ctx, s, env); err != nil {
			_, _ = w.Stop()
			return Result{}, fmt.Errorf("start worker: %w", err)
		}
		workers = append(workers, one)
	}
	start := time.Now()
	early := o.n.Load() // events that came before the workers said ready
	if s.Rate > 0 {
		go paced(ctx, env, run, s)
	}
	timeout := time.Duration(float64(s.N)/50+60) * time.Second
	select {
	case <-o.all:
	case <-time.After(timeout):
		_, _ = w.Stop()
		return Result{}, fmt.Errorf("%d of %d outcomes within %s", o.n.Load(), s.N, timeout)
	case <-ctx.Done():
		_, _ = w.Stop()
		return Result{}, ctx.Err()
	}
	o.mu.Lock()
	elapsed := o.last.Sub(start)
	lat := slices.Clone(o.latencies)
	failed := o.failed
	o.mu.Unlock()
	envCPU = CPUTime() - envCPU
	ws, err := w.Stop()
	if err != nil {
		return Result{}, fmt.Errorf("stop worker: %w", err)
	}
	if elapsed <= 0 || 2*early > int64(s.N) {
		// A worker (a peer, say) that says it is ready only after its
		// start, having consumed meanwhile, would get a throughput it did
		// not earn, below zero or beyond any.
		return Result{}, fmt.Errorf("%d of %d events came before the workers said ready: a worker says ready once it consumes, not later", early, s.N)
	}
	slices.Sort(lat)
	return Result{
		Scenario:     s,
		Seconds:      elapsed.Seconds(),
		Throughput:   float64(s.N) / elapsed.Seconds(),
		P50Ms:        float64(percentile(lat, 0.50)) / 1e6,
		P99Ms:        float64(percentile(lat, 0.99)) / 1e6,
		PeakRSS:      ws.PeakRSS,
		Failed:       failed,
		WorkerCPUus:  float64(ws.CPU.Microseconds()) / float64(s.N),
		EnvCPUus:     float64(envCPU.Microseconds()) / float64(s.N),
		WorkerAllocs: float64(ws.Mallocs) / float64(s.N),
		WorkerBytes:  float64(ws.AllocBytes) / float64(s.N),
	}, nil
}

// paced publishes s.N commands at s.Rate per second, in small batches.
func paced(ctx context.Context, env *Env, run string, s Scenario) {
	const tick = 5 * time.Millisecond
	perTick := s.Rate * tick.Seconds()
	t := time.NewTicker(tick)
	defer t.Stop()
	start := time.Now()
	sent := 0
	for sent < s.N {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		due := min(s.N, int(time.Since(start).Seconds()*s.Rate+perTick))
		for ; sent < due; sent++ {
			msg := nats.NewMsg(contact.SubjectCreate)
			msg.Data = command(run, sent)
			if _, err := env.js.PublishMsgAsync(msg); err != nil {
				return
			}
		}
	}
}

// Median returns the run with the median throughput of rs (the upper one
// of an even count), whose other figures come from that same run.
func Median(rs []Result) Result {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b Result) int {
		switch {
		case a.Throughput < b.Throughput:
			return -1
		case a.Throughput > b.Throughput:
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}

// workerGroup stops several workers and sums what they report: the CPU
// time of all, the largest peak memory of one.
type workerGroup struct{ workers *[]Worker }

func (g workerGroup) Stop() (WorkerStats, error) {
	var (
		total WorkerStats
		errs  []error
	)
	for _, w := range *g.workers {
		st, err := w.Stop()
		errs = append(errs, err)
		total.CPU += st.CPU
		total.Mallocs += st.Mallocs
		total.AllocBytes += st.AllocBytes
		total.PeakRSS = max(total.PeakRSS, st.PeakRSS)
	}
	return total, errors.Join(errs...)
}
