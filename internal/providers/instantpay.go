package providers

import (
	"net/http"
	"time"

	"github.com/contactrelay/contactrelay/internal/clients/instantpay"
	"github.com/contactrelay/contactrelay/internal/config"
	"github.com/contactrelay/contactrelay/internal/handlers"
	"github.com/contactrelay/contactrelay/rules"
)

// instantpaySpec is InstantPay's Contact Book: enabled by a client id and
// secret.
func instantpaySpec() Spec {
	return Spec{
		Name: instantpay.Name,
		Settings: []config.Setting{
			{Env: "INSTANTPAY_BASE_URL", Flag: "instantpay-base-url", Default: "https://api.instantpay.in", Usage: "InstantPay API base URL"},
			{Env: "INSTANTPAY_CLIENT_ID", Flag: "instantpay-client-id", Usage: "InstantPay client id", Secret: true},
			{Env: "INSTANTPAY_CLIENT_SECRET", Flag: "instantpay-client-secret", Usage: "InstantPay client secret", Secret: true},
			{Env: "INSTANTPAY_ENDPOINT_IP", Flag: "instantpay-endpoint-ip", Usage: "InstantPay X-Ipay-Endpoint-Ip"},
			{Env: "INSTANTPAY_AUTH_CODE", Flag: "instantpay-auth-code", Default: "1", Usage: "InstantPay X-Ipay-Auth-Code"},
			{Env: "INSTANTPAY_RATE_LIMIT", Flag: "instantpay-rate-limit", Default: "0", Usage: "most InstantPay calls per second (0: unlimited)"},
			{Env: "INSTANTPAY_MAX_CONCURRENCY", Flag: "instantpay-max-concurrency", Default: "0", Usage: "most InstantPay calls at once (0: CONCURRENCY)"},
		},
		// Its rules, defined once in package rules (the client applies them too).
		Rules: rules.CheckInstantPay,
		Build: func(v map[string]string, hc *http.Client, timeout time.Duration, _ RequestReport) (handlers.Provider, string, error) {
			if v["INSTANTPAY_CLIENT_ID"] == "" || v["INSTANTPAY_CLIENT_SECRET"] == "" {
				return nil, "INSTANTPAY_CLIENT_ID and INSTANTPAY_CLIENT_SECRET are not both set", nil
			}
			c, err := instantpay.New(instantpay.Config{
				BaseURL:      v["INSTANTPAY_BASE_URL"],
				ClientID:     v["INSTANTPAY_CLIENT_ID"],
				ClientSecret: v["INSTANTPAY_CLIENT_SECRET"],
				EndpointIP:   v["INSTANTPAY_ENDPOINT_IP"],
				AuthCode:     v["INSTANTPAY_AUTH_CODE"],
				HTTPClient:   hc,
				Timeout:      timeout,
			})
			return c, "", err
		},
	}
}
