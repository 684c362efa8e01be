package main

import (
	"net/http"
	"time"

	"github.com/contactrelay/contactrelay/internal/clients/instantpay"
	"github.com/contactrelay/contactrelay/internal/handlers"
)

// instantpaySpec is InstantPay's Contact Book: enabled by a client id and
// secret.
var instantpaySpec = providerSpec{
	name: instantpay.Name,
	settings: []setting{
		{env: "INSTANTPAY_BASE_URL", flag: "instantpay-base-url", def: "https://api.instantpay.in", usage: "InstantPay API base URL"},
		{env: "INSTANTPAY_CLIENT_ID", flag: "instantpay-client-id", usage: "InstantPay client id", secret: true},
		{env: "INSTANTPAY_CLIENT_SECRET", flag: "instantpay-client-secret", usage: "InstantPay client secret", secret: true},
		{env: "INSTANTPAY_ENDPOINT_IP", flag: "instantpay-endpoint-ip", usage: "InstantPay X-Ipay-Endpoint-Ip"},
		{env: "INSTANTPAY_AUTH_CODE", flag: "instantpay-auth-code", def: "1", usage: "InstantPay X-Ipay-Auth-Code"},
		{env: "INSTANTPAY_RATE_LIMIT", flag: "instantpay-rate-limit", def: "0", usage: "most InstantPay calls per second (0: unlimited)"},
		{env: "INSTANTPAY_MAX_CONCURRENCY", flag: "instantpay-max-concurrency", def: "0", usage: "most InstantPay calls at once (0: CONCURRENCY)"},
	},
	// Its rules read nothing of the client's configuration.
	rules: (&instantpay.Client{}).Validate,
	build: func(v map[string]string, hc *http.Client, timeout time.Duration, _ requestReport) (handlers.Provider, string, error) {
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
