package main

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/provision"
	"github.com/contactrelay/contactrelay/internal/sandbox"
)

// scrape returns the service's metrics as series → value.
func scrape(t testing.TB, httpAddr string) map[string]float64 {
	t.Helper()
	res, err := http.Get("http://" + httpAddr + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	out := map[string]float64{}
	line := regexp.MustCompile(`^(contactrelay_[^ ]+) ([^ ]+)$`)
	for _, l := range strings.Split(string(body), "\n") {
		if m := line.FindStringSubmatch(l); m != nil {
			v, err := strconv.ParseFloat(m[2], 64)
			require.NoError(t, err, l)
			out[m[1]] = v
		}
	}
	return out
}

func TestMetricsAfterARun(t *testing.T) {
	e := newTestEnv(t)
	require.NoError(t, run(t.Context(), []string{"setup"}, e.getenv, nil, io.Discard, io.Discard))
	// A backlog before the service starts, so the first lag reading sees it.
	for i := range 5 {
		e.publish(t, command(fmt.Sprintf("m-ok-%d", i)))
	}
	e.publish(t, command("m-bad", `"email":"nope"`))
	e.publish(t, command("m-pik", `"provider":"pik"`))
	e.ipay.Inject(sandbox.Fault{Times: 1, Status: 503})
	svc := e.start(t)
	e.awaitEvents(t, 7, 10*time.Second)
	e.publish(t, command("m-ok-0")) // again: answered from the record
	require.Eventually(t, func() bool {
		return scrape(t, svc.httpAddr)[`contactrelay_idempotency_hits_total{provider="instantpay"}`] == 1
	}, 5*time.Second, 20*time.Millisecond)

	m := scrape(t, svc.httpAddr)
	for series, want := range map[string]float64{
		`contactrelay_commands_received_total`:                                                              8,
		`contactrelay_outcomes_total{event="contact.created",provider="instantpay",reason=""}`:              6,
		`contactrelay_outcomes_total{event="contact.created",provider="pik",reason=""}`:                     1,
		`contactrelay_outcomes_total{event="contact.failed",provider="instantpay",reason="invalid"}`:        1,
		`contactrelay_provider_requests_total{operation="create",provider="instantpay",result="ok"}`:        5,
		`contactrelay_provider_requests_total{operation="create",provider="instantpay",result="transient"}`: 1,
		`contactrelay_provider_requests_total{operation="create",provider="pik",result="ok"}`:               1,
		`contactrelay_retries_total{provider="instantpay"}`:                                                 1,
		`contactrelay_idempotency_hits_total{provider="instantpay"}`:                                        1,
		`contactrelay_commands_in_flight`:                                                                   0,
		`contactrelay_circuit_state{provider="instantpay"}`:                                                 0,
		`contactrelay_circuit_state{provider="pik"}`:                                                        0,
		`contactrelay_consumer_lag`:                                                                         7,
	} {
		assert.Equal(t, want, m[series], series)
	}
	assert.Contains(t, m, `contactrelay_provider_request_duration_seconds_count{operation="create",provider="instantpay"}`)
	for series := range m {
		assert.NotContains(t, series, "m-ok", "no commandId in a label")
		assert.NotContains(t, series, "@", "no email in a label")
	}
}

func TestTracePropagation(t *testing.T) {
	e := newTestEnv(t)
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	e.tracerProvider = tp
	var (
		mu          sync.Mutex
		providerHdr []string
	)
	e.ipayCalls.seen = func(r *http.Request) {
		mu.Lock()
		providerHdr = append(providerHdr, r.Header.Get("traceparent"))
		mu.Unlock()
	}
	e.start(t)

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	e.publish(t, command("traced-1"), "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01", "tracestate", "vendor=x")
	e.awaitEvents(t, 1, 10*time.Second)

	mu.Lock()
	require.Len(t, providerHdr, 1)
	assert.Contains(t, providerHdr[0], traceID, "the provider request carries the command's trace")
	mu.Unlock()

	s, err := e.js.Stream(t.Context(), provision.EventStream)
	require.NoError(t, err)
	raw, err := s.GetMsg(t.Context(), 1)
	require.NoError(t, err)
	assert.Contains(t, raw.Header.Get("traceparent"), traceID, "the event carries the command's trace")
	assert.Equal(t, "vendor=x", raw.Header.Get("tracestate"))

	byName := map[string]tracetest.SpanStub{}
	for _, sp := range spans.GetSpans() {
		// PIK's credentials check at start has a trace of its own.
		if sp.SpanContext.TraceID().String() == traceID {
			byName[sp.Name] = sp
		}
	}
	process, ok := byName["contact.create process"]
	require.True(t, ok, "a span per command")
	create, ok := byName["instantpay create"]
	require.True(t, ok, "a span per provider call")
	assert.Equal(t, process.SpanContext.SpanID(), create.Parent.SpanID(), "the provider call is a child of the command's span")
	attrs := map[string]string{}
	for _, a := range process.Attributes {
		attrs[string(a.Key)] = a.Value.String()
	}
	assert.Equal(t, "nats", attrs["messaging.system"])
	assert.Equal(t, "process", attrs["messaging.operation.type"])
	assert.Equal(t, contact.SubjectCreate, attrs["messaging.destination.name"])
	var httpSpan bool
	for name, sp := range byName {
		if strings.HasPrefix(name, "HTTP POST") || name == "POST" {
			httpSpan = true
			assert.Equal(t, create.SpanContext.SpanID(), sp.Parent.SpanID(), "the HTTP request is a child of the provider call")
		}
	}
	assert.True(t, httpSpan, "the HTTP client makes a span: %v", keysOf(byName))
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestOpenCircuitDoesNotSlowTheOtherProvider(t *testing.T) {
	e := newTestEnv(t)
	e.vars["CONCURRENCY"] = "4"
	e.vars["MAX_DELIVER"] = "10"
	e.vars["RETRY_MAX_ELAPSED"] = "5s" // long in-process retries hold slots
	e.vars["RETRY_MAX_INTERVAL"] = "200ms"
	e.vars["CIRCUIT_FAILURES"] = "3"
	e.vars["CIRCUIT_OPEN_FOR"] = "10s"
	e.ipay.SetDown(true)
	svc := e.start(t)
	for i := range 12 {
		e.publish(t, command(fmt.Sprintf("ip-down-%d", i)))
	}
	pik := ids("pik-up", 8)
	for _, id := range pik {
		e.publish(t, command(id, `"provider":"pik"`))
	}
	start := time.Now()
	evs := e.awaitEvents(t, len(pik), 20*time.Second)
	took := time.Since(start)
	for _, ev := range evs {
		assert.Equal(t, contact.SubjectCreated, ev.Type)
		assert.Contains(t, pik, ev.Subject, "only the PIK commands are decided")
	}
	assert.Less(t, took, 5*time.Second, "PIK commands did not wait out InstantPay's retries")
	assert.Equal(t, float64(2), scrape(t, svc.httpAddr)[`contactrelay_circuit_state{provider="instantpay"}`], "InstantPay's circuit is open")
	assert.LessOrEqual(t, e.ipay.CreateCalls(), 6, "an open circuit sends no more calls")
	t.Logf("8 PIK commands decided in %s while InstantPay was down", took)
}

func TestTraceContextReachesProvidersWithTracingOff(t *testing.T) {
	e := newTestEnv(t) // no tracer provider: tracing off
	var got []string
	var mu sync.Mutex
	e.ipayCalls.seen = func(r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("traceparent"))
		mu.Unlock()
	}
	e.start(t)
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	e.publish(t, command("untraced-1"), "traceparent", tp)
	e.awaitEvents(t, 1, 10*time.Second)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, 1)
	assert.Equal(t, tp, got[0], "the command's traceparent goes on to the provider unchanged")
}
