package main

import (
	"net/http"
	"time"

	"github.com/contactrelay/contactrelay/internal/clients/pik"
	"github.com/contactrelay/contactrelay/internal/handlers"
)

// pikSpec is PIK's Global Account contacts: enabled by a base URL, an app
// id and an app secret.
var pikSpec = providerSpec{
	name: pik.Name,
	settings: []setting{
		{env: "PIK_BASE_URL", flag: "pik-base-url", usage: "PIK Global Account API base URL (enables PIK)"},
		{env: "PIK_APP_ID", flag: "pik-app-id", usage: "PIK app id", secret: true},
		{env: "PIK_APP_SECRET", flag: "pik-app-secret", usage: "PIK app secret", secret: true},
		{env: "PIK_RATE_LIMIT", flag: "pik-rate-limit", def: "0", usage: "most PIK calls per second (0: unlimited)"},
		{env: "PIK_MAX_CONCURRENCY", flag: "pik-max-concurrency", def: "0", usage: "most PIK calls at once (0: CONCURRENCY)"},
	},
	// Its rules read nothing of the client's configuration.
	rules: (&pik.Client{}).Validate,
	build: func(v map[string]string, hc *http.Client, timeout time.Duration, onRequest requestReport) (handlers.Provider, string, error) {
		if v["PIK_BASE_URL"] == "" || v["PIK_APP_ID"] == "" || v["PIK_APP_SECRET"] == "" {
			return nil, "PIK_BASE_URL, PIK_APP_ID and PIK_APP_SECRET are not all set", nil
		}
		cfg := pik.Config{
			BaseURL:    v["PIK_BASE_URL"],
			AppID:      v["PIK_APP_ID"],
			AppSecret:  v["PIK_APP_SECRET"],
			HTTPClient: hc,
			Timeout:    timeout,
		}
		if onRequest != nil {
			cfg.OnTokenRequest = func(took time.Duration, err error) { onRequest("token", took, err) }
		}
		c, err := pik.New(cfg)
		return c, "", err
	},
}
