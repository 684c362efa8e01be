package main

import (
	"fmt"
	"net/http"

	"github.com/contactrelay/contactrelay/internal/clients/instantpay"
	"github.com/contactrelay/contactrelay/internal/clients/pik"
	"github.com/contactrelay/contactrelay/internal/handlers"
)

// providerSpec builds one provider from the configuration. build returns a
// nil provider and the reason when the provider is not enabled.
type providerSpec struct {
	name  string
	build func(cfg Config, hc *http.Client) (p handlers.Provider, disabled string, err error)
}

// providerSpecs registers every provider the service knows: a new provider
// is a package under internal/clients and one line here.
var providerSpecs = []providerSpec{
	{name: instantpay.Name, build: buildInstantPay},
	{name: pik.Name, build: buildPIK},
}

func buildInstantPay(cfg Config, hc *http.Client) (handlers.Provider, string, error) {
	if !cfg.InstantPayEnabled() {
		return nil, "INSTANTPAY_CLIENT_ID and INSTANTPAY_CLIENT_SECRET are not both set", nil
	}
	c, err := instantpay.New(instantpay.Config{
		BaseURL:      cfg.InstantPayBaseURL,
		ClientID:     cfg.InstantPayClientID,
		ClientSecret: cfg.InstantPayClientSecret,
		EndpointIP:   cfg.InstantPayEndpointIP,
		AuthCode:     cfg.InstantPayAuthCode,
		HTTPClient:   hc,
		Timeout:      cfg.ProviderTimeout,
	})
	return c, "", err
}

func buildPIK(cfg Config, hc *http.Client) (handlers.Provider, string, error) {
	if !cfg.PIKEnabled() {
		return nil, "PIK_BASE_URL, PIK_APP_ID and PIK_APP_SECRET are not all set", nil
	}
	c, err := pik.New(pik.Config{
		BaseURL:    cfg.PIKBaseURL,
		AppID:      cfg.PIKAppID,
		AppSecret:  cfg.PIKAppSecret,
		HTTPClient: hc,
		Timeout:    cfg.ProviderTimeout,
	})
	return c, "", err
}

// buildProviders returns the enabled providers by name, and for each
// disabled one the reason.
func buildProviders(cfg Config, hc *http.Client) (map[string]handlers.Provider, map[string]string, error) {
	enabled := map[string]handlers.Provider{}
	disabled := map[string]string{}
	for _, spec := range providerSpecs {
		p, why, err := spec.build(cfg, hc)
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
