package providers

import (
	"net/http"
	"time"

	"github.com/contactrelay/contactrelay/internal/clients/pik"
	"github.com/contactrelay/contactrelay/internal/config"
	"github.com/contactrelay/contactrelay/internal/handlers"
	"github.com/contactrelay/contactrelay/rules"
)

// pikSpec is PIK's Global Account contacts: enabled by a base URL, an app
// id and an app secret.
func pikSpec() Spec {
	return Spec{
		Name: pik.Name,
		Settings: []config.Setting{
			{Env: "PIK_BASE_URL", Flag: "pik-base-url", Usage: "PIK Global Account API base URL (enables PIK)"},
			{Env: "PIK_APP_ID", Flag: "pik-app-id", Usage: "PIK app id", Secret: true},
			{Env: "PIK_APP_SECRET", Flag: "pik-app-secret", Usage: "PIK app secret", Secret: true},
			{Env: "PIK_RATE_LIMIT", Flag: "pik-rate-limit", Default: "0", Usage: "most PIK calls per second (0: unlimited)"},
			{Env: "PIK_MAX_CONCURRENCY", Flag: "pik-max-concurrency", Default: "0", Usage: "most PIK calls at once (0: CONCURRENCY)"},
		},
		// Its rules, defined once in package rules (the client applies them too).
		Rules: rules.CheckPIK,
		Build: func(v map[string]string, hc *http.Client, timeout time.Duration, onRequest RequestReport) (handlers.Provider, string, error) {
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
}
