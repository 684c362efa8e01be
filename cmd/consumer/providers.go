package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/handlers"
)

// providerSpec is all the service knows of one provider: its variables
// (its rate limit and concurrency cap among them, as <NAME>_RATE_LIMIT and
// <NAME>_MAX_CONCURRENCY) and how to build its client from them.
type providerSpec struct {
	name     string
	settings []setting
	// build returns the provider from its settings' values, or a nil
	// provider and why it is not enabled. onRequest, when not nil, is to
	// be told of every request the provider makes on its own, apart from
	// the handler's create and lookup calls (PIK's token requests).
	build func(v map[string]string, hc *http.Client, timeout time.Duration, onRequest requestReport) (p handlers.Provider, disabled string, err error)
	// rules returns the provider's own rules that cmd breaks, with no
	// client configured: 'consumer publish' checks them before sending.
	rules func(cmd events.Command) []events.FieldError
}

// requestReport is told of one request a provider made: its operation,
// how long it took and its error.
type requestReport func(op string, took time.Duration, err error)

// providerSpecs registers every provider the service knows. A new provider
// is a client package under internal/clients, a provider_<name>.go here
// with its spec, and one line in this list.
var providerSpecs = []providerSpec{
	instantpaySpec,
	pikSpec,
}

// knownProviders returns the names of every provider this build knows.
func knownProviders() []string {
	names := make([]string, len(providerSpecs))
	for i, spec := range providerSpecs {
		names[i] = spec.name
	}
	return names
}

// buildProviders returns the enabled providers by name, and for each
// disabled one the reason. onRequest, when not nil, is told of the requests
// the providers make on their own (see providerSpec.build).
func buildProviders(cfg Config, hc *http.Client, onRequest func(provider, op string, took time.Duration, err error)) (map[string]handlers.Provider, map[string]string, error) {
	enabled := map[string]handlers.Provider{}
	disabled := map[string]string{}
	for _, spec := range providerSpecs {
		var report requestReport
		if onRequest != nil {
			report = func(op string, took time.Duration, err error) { onRequest(spec.name, op, took, err) }
		}
		p, why, err := spec.build(cfg.Providers[spec.name], hc, cfg.ProviderTimeout, report)
		if err != nil {
			return nil, nil, fmt.Errorf("provider %s: %w", spec.name, err)
		}
		if p == nil {
			disabled[spec.name] = why
			continue
		}
		enabled[spec.name] = p
	}
	return enabled, disabled, nil
}
