// Package health keeps what the service knows of its own state — the last
// answer of each provider, the NATS connection, the consumer — and serves it
// as /healthz and /readyz. Readiness never calls a provider: it reports what
// the last real calls found.
package health

import (
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/contactrelay/contactrelay/internal/clients/provider"
	"github.com/contactrelay/contactrelay/internal/redact"
)

// Provider states.
const (
	StatusUnknown  = "unknown"  // no call yet
	StatusOK       = "ok"       // the last call was answered
	StatusDegraded = "degraded" // the last call failed transiently
	StatusFailing  = "failing"  // the provider refused our credentials
)

// ProviderState is what the last calls to one provider found.
type ProviderState struct {
	Status    string    `json:"status"`
	Since     time.Time `json:"since,omitzero"`
	LastOK    time.Time `json:"lastOk,omitzero"`
	LastError string    `json:"lastError,omitempty"`
}

// Providers tracks the state of each enabled provider from the outcome of
// real calls. It is safe for concurrent use.
type Providers struct {
	now    func() time.Time
	mu     sync.Mutex
	states map[string]*ProviderState
}

// NewProviders tracks the named providers, all unknown until called. A nil
// now means time.Now.
func NewProviders(names []string, now func() time.Time) *Providers {
	if now == nil {
		now = time.Now
	}
	p := &Providers{now: now, states: map[string]*ProviderState{}}
	for _, n := range names {
		p.states[n] = &ProviderState{Status: StatusUnknown}
	}
	return p
}

// ProviderCall records the result of one call to a provider. A permanent
// failure of a create call says something about the contact, not the
// provider, and counts as an answer; a refused token request means the
// provider cannot be used at all.
func (p *Providers) ProviderCall(name, op string, _ time.Duration, err error) {
	status := StatusOK
	var pe *provider.Error
	switch {
	case err == nil:
	case errors.As(err, &pe) && pe.Class == provider.Permanent && pe.Op == "token":
		status = StatusFailing
	case errors.As(err, &pe) && pe.Class == provider.Permanent:
		// The provider answered: it is up.
	default:
		status = StatusDegraded
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.states[name]
	if s == nil {
		s = &ProviderState{}
		p.states[name] = s
	}
	if s.Status != status {
		s.Status, s.Since = status, now
	}
	if status == StatusOK {
		s.LastOK, s.LastError = now, ""
	} else {
		s.LastError = redact.String(err.Error())
	}
}

// Snapshot returns a copy of every provider's state.
func (p *Providers) Snapshot() map[string]ProviderState {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]ProviderState, len(p.states))
	for n, s := range p.states {
		out[n] = *s
	}
	return out
}

// Check is one readiness condition: it returns nil when satisfied.
type Check struct {
	Name  string
	Check func() error
}

// Detail is a member of /readyz's body that tells without deciding
// readiness (the pauses, say): Value is called per request.
type Detail struct {
	Name  string
	Value func() any
}

// Handler serves GET /healthz (the process answers) and GET /readyz: 200
// when every check passes and no provider is failing, else 503, with a JSON
// body saying what is wrong, and each detail.
func Handler(checks []Check, providers *Providers, details ...Detail) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ready := true
		results := map[string]string{}
		var problems []string
		for _, c := range checks {
			if err := c.Check(); err != nil {
				ready = false
				results[c.Name] = err.Error()
				problems = append(problems, c.Name+": "+err.Error())
				continue
			}
			results[c.Name] = "ok"
		}
		ps := providers.Snapshot()
		for name, s := range ps {
			if s.Status == StatusFailing {
				ready = false
				problems = append(problems, name+": "+s.LastError)
			}
		}
		sort.Strings(problems)
		body := map[string]any{"checks": results, "providers": ps}
		for _, d := range details {
			body[d.Name] = d.Value()
		}
		status := http.StatusOK
		body["status"] = "ready"
		if !ready {
			status = http.StatusServiceUnavailable
			body["status"] = "not ready"
			body["problems"] = problems
		}
		writeJSON(w, status, body)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
