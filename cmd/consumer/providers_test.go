package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/sandbox"
)

func TestServiceMixedProviderTraffic(t *testing.T) {
	e := newTestEnv(t)
	e.start(t)
	const n = 60
	for i := range n {
		switch i % 3 {
		case 0:
			e.publish(t, command(fmt.Sprintf("mix-%d", i), `"provider":"pik"`))
		case 1:
			e.publish(t, command(fmt.Sprintf("mix-%d", i), `"provider":"instantpay"`))
		default: // the default provider
			e.publish(t, command(fmt.Sprintf("mix-%d", i)))
		}
	}
	evs := byCommand(e.awaitEvents(t, n, 20*time.Second))
	for i := range n {
		id := fmt.Sprintf("mix-%d", i)
		require.Len(t, evs[id], 1, id)
		require.Equal(t, contact.SubjectCreated, evs[id][0].Type, id)
		want := "instantpay"
		if i%3 == 0 {
			want = "pik"
		}
		assert.Equal(t, want, data[contact.Created](t, evs[id][0]).Provider, id)
	}
	assert.Len(t, e.pik.Contacts(), n/3)
	assert.Len(t, e.ipay.Contacts(), 2*n/3)
	assert.Equal(t, 1, e.pik.TokenRequests(), "all PIK calls shared one token")
}

func TestServiceRefreshesExpiringPIKTokens(t *testing.T) {
	t.Parallel() // it mostly waits: for ack waits, backoff or token lifetimes
	e := newTestEnv(t)
	// A sandbox whose tokens last two seconds: the client refreshes ahead.
	e.pik = sandbox.NewPIK(sandbox.PIKConfig{AppID: "app", AppSecret: "app-secret", TokenTTL: 2 * time.Second})
	srv := httptest.NewServer(e.pik)
	t.Cleanup(func() { e.pik.Close(); srv.Close() })
	e.vars["PIK_BASE_URL"] = srv.URL
	e.vars["DEFAULT_PROVIDER"] = "pik"
	e.start(t)

	const n = 12
	for i := range n {
		e.publish(t, command(fmt.Sprintf("tok-%d", i)))
		time.Sleep(300 * time.Millisecond) // spread over more than one token lifetime
	}
	evs := e.awaitEvents(t, n, 20*time.Second)
	for _, ev := range evs {
		assert.Equal(t, contact.SubjectCreated, ev.Type, "%s: no call failed on an expired token", ev.Subject)
	}
	assert.GreaterOrEqual(t, e.pik.TokenRequests(), 2, "the token was refreshed")
	assert.Equal(t, n, e.pik.CreateCalls(), "no create was refused for an expired token and retried")
}

func TestServicePIKBadCredentials(t *testing.T) {
	e := newTestEnv(t)
	e.vars["PIK_APP_SECRET"] = "wrong"
	svc := e.start(t)

	readyz := func() (int, map[string]any) {
		res, err := http.Get("http://" + svc.httpAddr + "/readyz")
		require.NoError(t, err)
		defer res.Body.Close()
		var body map[string]any
		require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
		return res.StatusCode, body
	}
	require.Eventually(t, func() bool { _, body := readyz(); return body["checks"].(map[string]any)["consumer"] == "ok" },
		5*time.Second, 20*time.Millisecond)
	code, body := readyz()
	assert.Equal(t, http.StatusServiceUnavailable, code, "refused credentials make the service not ready")
	pik := body["providers"].(map[string]any)["pik"].(map[string]any)
	assert.Equal(t, "failing", pik["status"])
	assert.NotContains(t, fmt.Sprint(body), "wrong", "the secret is not shown")

	e.publish(t, command("pik-bad", `"provider":"pik"`))
	evs := e.awaitEvents(t, 1, 10*time.Second)
	d := data[contact.Failed](t, evs[0])
	assert.Equal(t, contact.ReasonRejected, d.Reason, "bad credentials fail the command for good")
	assert.Contains(t, d.Message, "credentials", "the message says why")
	assert.Zero(t, e.pik.CreateCalls())
}

func TestServiceProviderSpecificRules(t *testing.T) {
	e := newTestEnv(t)
	e.start(t)
	// A tagId that is not 24 hex characters is fine for PIK, not for InstantPay.
	e.publish(t, command("rule-pik", `"provider":"pik"`, `"tagId":"vip"`))
	e.publish(t, command("rule-ipay", `"provider":"instantpay"`, `"tagId":"vip"`))
	// PIK fields sent to InstantPay are ignored, even of the wrong type.
	e.publish(t, command("rule-ignored", `"provider":"instantpay"`, `"pik":{"paymentContactAddress":"not an object"}`))
	// ... but checked for PIK.
	e.publish(t, command("rule-pik-bad", `"provider":"pik"`, `"pik":{"paymentContactAddress":"not an object"}`))

	evs := byCommand(e.awaitEvents(t, 4, 10*time.Second))
	assert.Equal(t, contact.SubjectCreated, evs["rule-pik"][0].Type)
	assert.Equal(t, contact.SubjectCreated, evs["rule-ignored"][0].Type)
	ipay := data[contact.Failed](t, evs["rule-ipay"][0])
	assert.Equal(t, contact.ReasonInvalid, ipay.Reason)
	require.Len(t, ipay.Errors, 1)
	assert.Equal(t, "tagId", ipay.Errors[0].Field)
	pikBad := data[contact.Failed](t, evs["rule-pik-bad"][0])
	assert.Equal(t, contact.ReasonInvalid, pikBad.Reason)
	require.NotEmpty(t, pikBad.Errors)
	assert.Contains(t, pikBad.Errors[0].Field, "paymentContactAddress")
}
