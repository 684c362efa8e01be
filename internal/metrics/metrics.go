// Package metrics holds contactrelay's Prometheus metrics, on a registry of
// its own (no global state), and the functions the runner and the handler
// call to update them. Label values are bounded: provider names, operation
// names, outcome reasons and result classes, never ids or error text.
package metrics

import (
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/clients/provider"
	"github.com/contactrelay/contactrelay/internal/handlers"
)

const namespace = "contactrelay"

// Metrics are the service's metrics. Its methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	mu       sync.Mutex
	openSeen map[[2]string]bool // failures_open series ever set

	received      prometheus.Counter
	redeliveries  prometheus.Counter
	replays       prometheus.Counter
	inFlight      prometheus.Gauge
	outcomes      *prometheus.CounterVec
	retryLater    *prometheus.CounterVec
	idempotent    *prometheus.CounterVec
	settleErrors  prometheus.Counter
	duration      *prometheus.HistogramVec
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	retries       *prometheus.CounterVec
	circuit       *prometheus.GaugeVec
	lag           prometheus.Gauge
	pending       prometheus.Gauge
	ackPending    prometheus.Gauge
	failuresOpen  *prometheus.GaugeVec
	lagReadErrors prometheus.Counter
	paused        *prometheus.GaugeVec
	held          *prometheus.CounterVec
}

// New returns the metrics, registered with the Go runtime's and the
// process's collectors on a new registry, for the named providers.
func New(providers []string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), openSeen: map[[2]string]bool{}}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	m.received = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "commands_received_total",
		Help: "Deliveries of contact.create commands received from the stream."})
	m.redeliveries = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "redeliveries_total",
		Help: "Deliveries that were not a command's first."})
	m.replays = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "replays_received_total",
		Help: "Deliveries of replayed commands (with Contact-Replay-Of)."})
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "commands_in_flight",
		Help: "Commands being processed now, from delivery to ack."})
	m.outcomes = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "outcomes_total",
		Help: "Terminal events published, by provider, event type and failure reason (empty for contact.created)."},
		[]string{"provider", "event", "reason"})
	m.retryLater = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "deliveries_deferred_total",
		Help: "Deliveries handed back for redelivery later (NakWithDelay), by provider."}, []string{"provider"})
	m.idempotent = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "idempotency_hits_total",
		Help: "Outcomes answered from the idempotency record without a provider call, by provider."}, []string{"provider"})
	m.settleErrors = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "settle_errors_total",
		Help: "Failures to publish an event or to ack, nak or term a command (it is redelivered)."})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "command_duration_seconds",
		Help:    "Time from receiving a delivery to settling it, by event type (retry for a deferred one).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}}, []string{"event"})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "provider_requests_total",
		Help: "Calls to providers, by provider, operation (create, lookup, token) and result (ok, transient, permanent, ambiguous)."},
		[]string{"provider", "operation", "result"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "provider_request_duration_seconds",
		Help:    "Duration of calls to providers, by provider and operation.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"provider", "operation"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "retries_total",
		Help: "In-process retries after a transient failure, by provider."}, []string{"provider"})
	m.circuit = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "circuit_state",
		Help: "State of each provider's circuit breaker: 0 closed, 1 half-open, 2 open."}, []string{"provider"})
	m.lag = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "consumer_lag",
		Help: "Commands not yet settled: the durable consumer's pending plus ack-pending, as KEDA's NATS JetStream scaler reads it."})
	m.pending = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "consumer_pending",
		Help: "Commands in the stream not yet delivered to the durable consumer."})
	m.ackPending = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "consumer_ack_pending",
		Help: "Commands delivered and not yet acknowledged."})
	m.failuresOpen = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "failures_open",
		Help: "Open failures (commandIds whose newest outcome is a contact.failed, and open conflicts), by reason and provider, read from the store every 30s. Every instance reports the same figures: aggregate with max, not sum."},
		[]string{"reason", "provider"})
	m.lagReadErrors = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "consumer_info_errors_total",
		Help: "Failures to read the durable consumer's state."})
	m.paused = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "provider_paused",
		Help: "1 while an operator has paused the provider (consumer pause) and this instance has seen it, else 0."}, []string{"provider"})
	m.held = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "deliveries_held_total",
		Help: "Deliveries handed back unprocessed because their provider was paused, by provider; they count toward no delivery limit."}, []string{"provider"})
	for _, c := range []prometheus.Collector{m.paused, m.held, m.received, m.redeliveries, m.replays, m.inFlight, m.outcomes, m.retryLater,
		m.idempotent, m.settleErrors, m.duration, m.requests, m.latency, m.retries, m.circuit, m.lag, m.pending,
		m.ackPending, m.lagReadErrors, m.failuresOpen} {
		f(c)
	}
	// Every series a dashboard or an alert watches exists from the start
	// at zero, so that its first increase shows in rate().
	for _, reason := range []contact.Reason{contact.ReasonMalformed, contact.ReasonUnroutable} {
		m.outcomes.WithLabelValues("", contact.SubjectFailed, string(reason))
	}
	for _, p := range providers {
		m.circuit.WithLabelValues(p).Set(0)
		m.paused.WithLabelValues(p).Set(0)
		m.held.WithLabelValues(p)
		m.retries.WithLabelValues(p)
		m.idempotent.WithLabelValues(p)
		m.retryLater.WithLabelValues(p)
		m.outcomes.WithLabelValues(p, contact.SubjectCreated, "")
		for _, reason := range []contact.Reason{contact.ReasonInvalid, contact.ReasonRejected, contact.ReasonExhausted} {
			m.outcomes.WithLabelValues(p, contact.SubjectFailed, string(reason))
		}
		for _, op := range []string{"create", "lookup"} {
			for _, result := range []string{"ok", "transient", "permanent", "ambiguous"} {
				m.requests.WithLabelValues(p, op, result)
			}
		}
	}
	return m
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Received counts a delivery as it starts.
func (m *Metrics) Received(msg handlers.Message) {
	m.received.Inc()
	m.inFlight.Inc()
	if msg.Delivery > 1 {
		m.redeliveries.Inc()
	}
	if msg.Generation != "" {
		m.replays.Inc()
	}
}

// Settled counts a delivery as it ends: its decision, or its deferral, and
// whether settling it on the stream failed.
func (m *Metrics) Settled(_ handlers.Message, out handlers.Decision, took time.Duration, settleErr error) {
	m.inFlight.Dec()
	event := "retry"
	if out.Event != nil && settleErr == nil {
		event = out.Event.Type
		m.outcomes.WithLabelValues(out.Provider, event, string(out.Reason)).Inc()
		if out.FromRecord {
			m.idempotent.WithLabelValues(out.Provider).Inc()
		}
	} else if out.Held {
		m.held.WithLabelValues(out.Provider).Inc()
	} else {
		m.retryLater.WithLabelValues(out.Provider).Inc()
	}
	if settleErr != nil {
		m.settleErrors.Inc()
	}
	m.duration.WithLabelValues(event).Observe(took.Seconds())
}

// ProviderCall counts one request to a provider, of operation op
// ("create", "lookup" or "token"), with its result and latency. Call it once
// per request made: the handler for its create and lookup calls, a client
// for the requests it makes on its own (PIK's token requests, with
// pik.Config.OnTokenRequest). A call that failed on another operation's
// error (a create whose token request failed) made no request of its own
// and is not counted: that request was counted where it was made, and
// counting it again per command would count one refused token request
// once for every command that waited for it.
func (m *Metrics) ProviderCall(name, op string, took time.Duration, err error) {
	result := "ok"
	var pe *provider.Error
	if err != nil {
		result = provider.Transient.String()
		if errors.As(err, &pe) {
			if pe.Op != "" && pe.Op != op {
				return
			}
			result = pe.Class.String()
		}
	}
	m.requests.WithLabelValues(name, op, result).Inc()
	m.latency.WithLabelValues(name, op).Observe(took.Seconds())
}

// Retry counts an in-process retry.
func (m *Metrics) Retry(provider string) { m.retries.WithLabelValues(provider).Inc() }

// Paused records whether a provider is paused.
func (m *Metrics) Paused(provider string, paused bool) {
	v := 0.0
	if paused {
		v = 1
	}
	m.paused.WithLabelValues(provider).Set(v)
}

// CircuitChange records a provider's circuit state.
func (m *Metrics) CircuitChange(provider, _, to string) {
	v := 0.0
	switch to {
	case "half-open":
		v = 1
	case "open":
		v = 2
	}
	m.circuit.WithLabelValues(provider).Set(v)
}

// FailuresOpen records the open failures by reason and provider (key
// {reason, provider}); a pair no longer open drops to zero. Providers
// outside known are counted as "other", so that no command can add
// series.
func (m *Metrics) FailuresOpen(counts map[[2]string]int, known []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := map[[2]string]int{}
	for k, n := range counts {
		switch {
		case k[1] == "":
			k[1] = "none"
		case !slices.Contains(known, k[1]):
			k[1] = "other"
		}
		next[k] += n
	}
	for k := range m.openSeen {
		if _, ok := next[k]; !ok {
			m.failuresOpen.WithLabelValues(k[0], k[1]).Set(0)
		}
	}
	for k, n := range next {
		m.failuresOpen.WithLabelValues(k[0], k[1]).Set(float64(n))
		m.openSeen[k] = true
	}
}

// ConsumerState records the durable consumer's backlog; err counts a
// failed read and leaves the last figures.
func (m *Metrics) ConsumerState(pending, ackPending uint64, err error) {
	if err != nil {
		m.lagReadErrors.Inc()
		return
	}
	m.pending.Set(float64(pending))
	m.ackPending.Set(float64(ackPending))
	m.lag.Set(float64(pending + ackPending))
}
