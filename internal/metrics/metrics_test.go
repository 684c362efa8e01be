package metrics

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/clients/provider"
)

// series returns the metrics m serves, as series → value.
func series(t *testing.T, m *Metrics) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	out := map[string]float64{}
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(name, namespace+"_") {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		require.NoError(t, err, line)
		out[name] = v
	}
	return out
}

func TestProviderCallCountsEachRequestOnce(t *testing.T) {
	m := New([]string{"pik"})
	refused := func() error {
		return &provider.Error{Provider: "pik", Op: "token", Class: provider.Permanent, Message: "PIK rejected the app credentials"}
	}
	// Four token requests, as the client reports them: three refused, one
	// granted.
	for range 3 {
		m.ProviderCall("pik", "token", time.Millisecond, refused())
	}
	m.ProviderCall("pik", "token", time.Millisecond, nil)
	// Seven commands whose create waited for a refused token request: no
	// create request was made, and the token requests are counted above.
	for range 7 {
		m.ProviderCall("pik", "create", time.Millisecond, refused())
	}
	m.ProviderCall("pik", "create", time.Millisecond, nil)
	m.ProviderCall("pik", "create", time.Millisecond, &provider.Error{Provider: "pik", Op: "create", Class: provider.Transient})

	got := series(t, m)
	for s, want := range map[string]float64{
		`contactrelay_provider_requests_total{operation="token",provider="pik",result="permanent"}`:  3,
		`contactrelay_provider_requests_total{operation="token",provider="pik",result="ok"}`:         1,
		`contactrelay_provider_requests_total{operation="create",provider="pik",result="ok"}`:        1,
		`contactrelay_provider_requests_total{operation="create",provider="pik",result="transient"}`: 1,
		`contactrelay_provider_requests_total{operation="create",provider="pik",result="permanent"}`: 0,
		`contactrelay_provider_request_duration_seconds_count{operation="token",provider="pik"}`:     4,
		`contactrelay_provider_request_duration_seconds_count{operation="create",provider="pik"}`:    2,
	} {
		assert.Equal(t, want, got[s], "%s counts each request made once", s)
	}
}

// The open failures gauge follows the store's counts: a pair no longer
// open drops to zero, and a provider no build knows cannot add series.
func TestFailuresOpen(t *testing.T) {
	m := New([]string{"pik"})
	m.FailuresOpen(map[[2]string]int{
		{"exhausted", "pik"}:   3,
		{"unroutable", "evil"}: 2,
		{"unroutable", "x.y"}:  1,
		{"malformed", ""}:      4,
	}, []string{"pik", "instantpay"})
	got := series(t, m)
	assert.Equal(t, 3.0, got[`contactrelay_failures_open{provider="pik",reason="exhausted"}`])
	assert.Equal(t, 3.0, got[`contactrelay_failures_open{provider="other",reason="unroutable"}`])
	assert.Equal(t, 4.0, got[`contactrelay_failures_open{provider="none",reason="malformed"}`])

	m.FailuresOpen(map[[2]string]int{{"malformed", ""}: 1}, []string{"pik", "instantpay"})
	got = series(t, m)
	v, ok := got[`contactrelay_failures_open{provider="pik",reason="exhausted"}`]
	assert.True(t, ok, "the series stays")
	assert.Zero(t, v, "at zero once resolved")
	assert.Equal(t, 1.0, got[`contactrelay_failures_open{provider="none",reason="malformed"}`])
}
