// Package providers is the registry of the payment providers the service
// knows: for each, its variables and how to build its client from them
// (a Spec). A new provider is a client package under internal/clients,
// a file here with its spec, and one line in specs.
package providers

import (
	"fmt"
	"net/http"
	"time"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/config"
	"github.com/contactrelay/contactrelay/internal/handlers"
)

// Spec is all the service knows of one provider: its variables (its rate
// limit and concurrency cap among them, as <NAME>_RATE_LIMIT and
// <NAME>_MAX_CONCURRENCY) and how to build its client from them.
type Spec struct {
	Name     string
	Settings []config.Setting
	// Build returns the provider from its settings' values, or a nil
	// provider and why it is not enabled. onRequest, when not nil, is to
	// be told of every request the provider makes on its own, apart from
	// the handler's create and lookup calls (PIK's token requests).
	Build func(v map[string]string, hc *http.Client, timeout time.Duration, onRequest RequestReport) (p handlers.Provider, disabled string, err error)
	// Rules returns the provider's own rules that cmd breaks, with no
	// client configured.
	Rules func(cmd contact.Command) []contact.FieldError
}

// RequestReport is told of one request a provider made: its operation,
// how long it took and its error.
type RequestReport func(op string, took time.Duration, err error)

// specs registers every provider the service knows. A new provider is a
// client package under internal/clients, a file here with its spec, and
// one line in this list.
func specs() []Spec {
	return []Spec{
		instantpaySpec(),
		pikSpec(),
	}
}

// Names returns the names of every provider this build knows, in the
// registry's order.
func Names() []string {
	all := specs()
	names := make([]string, len(all))
	for i, spec := range all {
		names[i] = spec.Name
	}
	return names
}

// Settings returns every provider's part of the configuration, for
// config.Flags.
func Settings() []config.Provider {
	var out []config.Provider
	for _, spec := range specs() {
		out = append(out, config.Provider{Name: spec.Name, Settings: spec.Settings})
	}
	return out
}

// Build returns the enabled providers by name, and for each disabled one
// the reason, with hc as their HTTP client. onRequest, when not nil, is
// told of the requests the providers make on their own (see Spec.Build).
func Build(cfg config.Config, hc *http.Client, onRequest func(provider, op string, took time.Duration, err error)) (map[string]handlers.Provider, map[string]string, error) {
	enabled := map[string]handlers.Provider{}
	disabled := map[string]string{}
	for _, spec := range specs() {
		var report RequestReport
		if onRequest != nil {
			report = func(op string, took time.Duration, err error) { onRequest(spec.Name, op, took, err) }
		}
		p, why, err := spec.Build(cfg.Providers[spec.Name], hc, cfg.ProviderTimeout, report)
		if err != nil {
			return nil, nil, fmt.Errorf("provider %s: %w", spec.Name, err)
		}
		if p == nil {
			disabled[spec.Name] = why
			continue
		}
		enabled[spec.Name] = p
	}
	return enabled, disabled, nil
}
