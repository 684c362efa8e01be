package health

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/contactrelay/contactrelay/internal/clients/provider"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestProviderStates(t *testing.T) {
	tests := []struct {
		name string
		op   string
		err  error
		want string
	}{
		{"answered", "create", nil, StatusOK},
		{"contact refused", "create", &provider.Error{Class: provider.Permanent, Op: "create", Code: "RPI"}, StatusOK},
		{"transient", "create", &provider.Error{Class: provider.Transient, Op: "create", HTTPStatus: 503}, StatusDegraded},
		{"no answer", "create", &provider.Error{Class: provider.Ambiguous, Op: "create", Code: "timeout"}, StatusDegraded},
		{"other error", "lookup", errors.New("boom"), StatusDegraded},
		{"credentials refused", "token", &provider.Error{Class: provider.Permanent, Op: "token", Message: "PIK rejected the app credentials"}, StatusFailing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewProviders([]string{"pik"}, nil)
			assert.Equal(t, StatusUnknown, p.Snapshot()["pik"].Status, "unknown before any call")
			p.ProviderCall("pik", tt.op, time.Millisecond, tt.err)
			assert.Equal(t, tt.want, p.Snapshot()["pik"].Status)
		})
	}
}

func TestReadyz(t *testing.T) {
	natsDown := errors.New("disconnected")
	var natsErr error
	p := NewProviders([]string{"instantpay", "pik"}, nil)
	srv := httptest.NewServer(Handler([]Check{{Name: "nats", Check: func() error { return natsErr }}}, p))
	defer srv.Close()

	get := func() (int, map[string]any) {
		res, err := http.Get(srv.URL + "/readyz")
		require.NoError(t, err)
		defer res.Body.Close()
		var body map[string]any
		require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
		return res.StatusCode, body
	}

	code, body := get()
	assert.Equal(t, http.StatusOK, code, "ready with NATS up and no provider failing")
	assert.Equal(t, "ready", body["status"])

	natsErr = natsDown
	code, body = get()
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, body["problems"], "nats: disconnected", "the body says what is wrong")

	natsErr = nil
	p.ProviderCall("pik", "token", 0, &provider.Error{Provider: "pik", Op: "token", Class: provider.Permanent, Message: "PIK rejected the app credentials: invalid appId"})
	code, body = get()
	assert.Equal(t, http.StatusServiceUnavailable, code, "refused credentials make the service not ready")
	providers := body["providers"].(map[string]any)
	assert.Equal(t, StatusFailing, providers["pik"].(map[string]any)["status"])
	assert.Equal(t, StatusUnknown, providers["instantpay"].(map[string]any)["status"])

	p.ProviderCall("pik", "create", 0, nil)
	code, _ = get()
	assert.Equal(t, http.StatusOK, code, "a later answer makes it ready again")
}
