package sandbox

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAdminEndpoints(t *testing.T) {
	for _, p := range providers() {
		t.Run(p.name, func(t *testing.T) {
			f := p.new(t)
			admin := func(method, path string, body any) answer {
				t.Helper()
				return mustCall(t, f.srv.Client(), method, f.srv.URL+path, nil, body)
			}

			t.Run("POST faults appends", func(t *testing.T) {
				a := admin(http.MethodPost, "/_sandbox/faults",
					`{"times": 1, "status": 503, "retryAfter": "2s", "message": "SANDBOX: boom"}`)
				require.Equal(t, http.StatusOK, a.status, "the fault is accepted: %v", a.body)
				assert.Equal(t, []any{map[string]any{
					"times": 1.0, "status": 503.0, "retryAfter": "2s", "message": "SANDBOX: boom",
				}}, a.body["faults"], "the queue holds the fault")
				c := wantCreate(t, f, 503, errorCode(f, "ISE", "503"), "the injected fault applies")
				assert.Equal(t, "2", c.header.Get("Retry-After"), "with its Retry-After")
				assert.Empty(t, admin(http.MethodGet, "/_sandbox/faults", nil).body["faults"], "the fault is used up")
			})

			t.Run("DELETE faults clears", func(t *testing.T) {
				admin(http.MethodPost, "/_sandbox/faults", `{"status": 500}`)
				admin(http.MethodPost, "/_sandbox/faults", `{"times": 2, "drop": true}`)
				assert.Len(t, admin(http.MethodGet, "/_sandbox/faults", nil).body["faults"], 2, "two faults queued")
				a := admin(http.MethodDelete, "/_sandbox/faults", nil)
				assert.Empty(t, a.body["faults"], "no faults left")
				wantCreate(t, f, 200, "", "creates succeed again")
			})

			t.Run("POST faults refuses bad faults", func(t *testing.T) {
				for _, body := range []string{
					`{`, `{"tiems": 1}`, `{"status": 42}`, `{"times": -1}`,
					`{"latency": "soon"}`, `{"code": true}`, `{"retryAfter": "-1s"}`,
				} {
					a := admin(http.MethodPost, "/_sandbox/faults", body)
					assert.Equal(t, http.StatusBadRequest, a.status, "fault %s is refused", body)
					assert.Contains(t, a.body["error"], "SANDBOX", "the error says SANDBOX")
				}
				assert.Empty(t, admin(http.MethodGet, "/_sandbox/faults", nil).body["faults"], "nothing was queued")
			})

			t.Run("down and up", func(t *testing.T) {
				assert.Equal(t, true, admin(http.MethodPost, "/_sandbox/down", nil).body["down"], "down")
				assert.Equal(t, true, admin(http.MethodGet, "/_sandbox/down", nil).body["down"], "still down")
				wantCreate(t, f, 503, errorCode(f, "ISE", "503"), "creates fail while down")
				assert.Equal(t, http.StatusOK, admin(http.MethodGet, "/_sandbox/contacts", nil).status,
					"admin endpoints answer while down")
				assert.Equal(t, false, admin(http.MethodDelete, "/_sandbox/down", nil).body["down"], "up")
				wantCreate(t, f, 200, "", "creates succeed when up")
			})

			t.Run("GET contacts with counts", func(t *testing.T) {
				a := admin(http.MethodGet, "/_sandbox/contacts", nil)
				assert.Equal(t, "SANDBOX", a.body["environment"], "labelled SANDBOX")
				assert.EqualValues(t, f.sb.CreateCalls(), a.body["createCalls"], "createCalls")
				assert.EqualValues(t, len(f.sb.Contacts()), a.body["count"], "count")
				assert.EqualValues(t, 0, a.body["duplicates"], "duplicates")
				contacts, ok := a.body["contacts"].([]any)
				require.True(t, ok, "contacts is an array: %v", a.body)
				require.Len(t, contacts, len(f.sb.Contacts()), "every contact listed")
				first := contacts[0].(map[string]any)
				assert.Equal(t, f.sb.Contacts()[0].ID, first["id"], "contacts carry their id")
				assert.NotEmpty(t, first["body"], "contacts carry their body")
				if p.name == "pik" {
					assert.EqualValues(t, 1, a.body["tokenRequests"], "PIK counts token requests")
				}
			})

			t.Run("unknown admin endpoint", func(t *testing.T) {
				a := admin(http.MethodPut, "/_sandbox/faults", nil)
				assert.Equal(t, http.StatusNotFound, a.status, "no such admin endpoint")
			})
		})
	}
}

func TestAdminIgnoresLatency(t *testing.T) {
	sb := NewInstantPay(InstantPayConfig{Latency: 5 * time.Second})
	srv := startServer(t, sb)
	start := time.Now()
	a := mustCall(t, srv.Client(), http.MethodGet, srv.URL+"/_sandbox/contacts", nil, nil)
	assert.Equal(t, http.StatusOK, a.status, "the admin endpoint answers")
	assert.Less(t, time.Since(start), time.Second, "without the configured latency")
}

func TestFaultJSON(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want Fault
	}{
		{"durations as strings", `{"times":2,"status":503,"retryAfter":"1.5s","latency":"200ms"}`,
			Fault{Times: 2, Status: 503, RetryAfter: 1500 * time.Millisecond, Latency: 200 * time.Millisecond}},
		{"durations as seconds", `{"retryAfter":2,"latency":0.25}`,
			Fault{RetryAfter: 2 * time.Second, Latency: 250 * time.Millisecond}},
		{"code as a number", `{"code":500,"message":"m"}`, Fault{Code: "500", Message: "m"}},
		{"code as a string", `{"code":"ISE"}`, Fault{Code: "ISE"}},
		{"for one email", `{"times":1,"email":"a@example.com","status":503}`,
			Fault{Times: 1, Email: "a@example.com", Status: 503}},
		{"flags", `{"hang":true,"createThenHang":true,"drop":true}`,
			Fault{Hang: true, CreateThenHang: true, Drop: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got Fault
			require.NoError(t, json.Unmarshal([]byte(tc.in), &got), "the fault decodes")
			assert.Equal(t, tc.want, got, "decoded fault")
			data, err := json.Marshal(got)
			require.NoError(t, err, "the fault encodes")
			var again Fault
			require.NoError(t, json.Unmarshal(data, &again), "the encoded fault decodes")
			assert.Equal(t, got, again, "the fault survives a round trip through %s", data)
		})
	}
}

func TestUnknownEndpoint(t *testing.T) {
	for _, p := range providers() {
		t.Run(p.name, func(t *testing.T) {
			f := p.new(t)
			a := mustCall(t, f.srv.Client(), http.MethodGet, f.srv.URL+"/nope", nil, nil)
			assert.Equal(t, http.StatusNotFound, a.status, "an unknown path is 404")
			assert.Equal(t, "404", f.code(a), "with 404 in the body")
			assert.Equal(t, "SANDBOX", a.body["environment"], "labelled SANDBOX")
		})
	}
}
