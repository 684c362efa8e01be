package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/sandbox"
)

const tagID = "65a1b2c3d4e5f6a7b8c9d0e1"

func command(id string, extra ...string) string {
	fields := []string{
		fmt.Sprintf(`"commandId":%q`, id),
		`"name":"Jane Doe"`,
		fmt.Sprintf(`"email":"%s@example.com"`, strings.ToLower(strings.ReplaceAll(id, ":", "-"))),
		`"mobile":"+919876543210"`,
		fmt.Sprintf(`"tagId":%q`, tagID),
		`"metadata":{"source":"test"}`,
	}
	return "{" + strings.Join(append(fields, extra...), ",") + "}"
}

func TestServiceCreatesContacts(t *testing.T) {
	e := newTestEnv(t)
	e.start(t)
	e.publish(t, command("ip-1"))
	e.publish(t, command("pik-1", `"provider":"pik"`, `"pik":{"firstName":"Jane","paymentContactAddress":{"city":"Pune"}}`))

	evs := byCommand(e.awaitEvents(t, 2, 10*time.Second))
	ip := evs["ip-1"]
	require.Len(t, ip, 1)
	assert.Equal(t, contact.SubjectCreated, ip[0].Type)
	d := data[contact.Created](t, ip[0])
	assert.Equal(t, "instantpay", d.Provider)
	assert.Equal(t, e.ipay.Contacts()[0].ID, d.ContactID, "the contact id is InstantPay's data._id")
	assert.Equal(t, 1, d.Attempts)
	assert.Equal(t, map[string]string{"source": "test"}, d.Metadata)
	for _, k := range []string{"contactId", "userId", "ipayUuid", "orderId", "environment", "timestamp"} {
		assert.Contains(t, d.Upstream, k, "upstream carries InstantPay's %s", k)
	}

	pk := evs["pik-1"]
	require.Len(t, pk, 1)
	pd := data[contact.Created](t, pk[0])
	assert.Equal(t, "pik", pd.Provider)
	require.Len(t, e.pik.Contacts(), 1)
	stored := e.pik.Contacts()[0]
	assert.Equal(t, stored.ContactCode, pd.ContactID, "the contact id is PIK's contactCode")
	assert.Equal(t, "Jane Doe", stored.Body["displayName"])
	assert.Equal(t, map[string]any{"city": "Pune"}, stored.Body["paymentContactAddress"], "nested pik fields pass through")
}

func TestServiceAnswersBadInputWithFailedEvents(t *testing.T) {
	e := newTestEnv(t)
	svc := e.start(t)
	bad := map[string]string{
		"empty":     "",
		"not json":  "hello",
		"array":     `[1,2]`,
		"binary":    "\xff\xfe\x00",
		"too large": `{"name":"` + strings.Repeat("a", contact.MaxCommandSize) + `"}`,
	}
	for name, body := range bad {
		e.publish(t, body, contact.HeaderMsgID, "bad-"+name)
	}
	e.publish(t, `{"commandId":"inv-1","name":" ","email":"x@","mobile":"12","tagId":"nothex"}`)
	e.publish(t, command("unr-1", `"provider":"acme"`))
	e.publish(t, command("wrong-type", `"companyName":42`))

	evs := byCommand(e.awaitEvents(t, len(bad)+3, 10*time.Second))
	for name := range bad {
		got := evs["bad-"+name]
		require.Len(t, got, 1, name)
		d := data[contact.Failed](t, got[0])
		assert.Equal(t, contact.ReasonMalformed, d.Reason, name)
		assert.NotEmpty(t, d.Message, name)
	}
	inv := data[contact.Failed](t, evs["inv-1"][0])
	assert.Equal(t, contact.ReasonInvalid, inv.Reason)
	var fields []string
	for _, fe := range inv.Errors {
		fields = append(fields, fe.Field)
	}
	assert.ElementsMatch(t, []string{"name", "email", "mobile", "tagId"}, fields, "every broken rule is reported at once")
	assert.Equal(t, contact.ReasonUnroutable, data[contact.Failed](t, evs["unr-1"][0]).Reason)
	wt := data[contact.Failed](t, evs["wrong-type"][0])
	assert.Equal(t, contact.ReasonInvalid, wt.Reason)
	assert.Equal(t, "companyName", wt.Errors[0].Field)

	assert.Zero(t, e.ipay.CreateCalls()+e.pik.CreateCalls(), "bad input reaches no provider")
	assert.Len(t, e.settle(t, svc, 10*time.Second), len(bad)+3, "bad input is terminated, not redelivered")
	assert.EqualValues(t, len(bad)+3, consumerInfoOf(t, e).Delivered.Consumer, "each command was delivered once")
}

func TestServiceRetriesTransientFailures(t *testing.T) {
	e := newTestEnv(t)
	e.vars["RETRY_MAX_ELAPSED"] = "5s"
	e.ipay.Inject(sandbox.Fault{Times: 2, Status: 503})
	e.start(t)
	e.publish(t, command("flaky-1"))
	evs := e.awaitEvents(t, 1, 10*time.Second)
	require.Equal(t, contact.SubjectCreated, evs[0].Type)
	assert.Equal(t, 3, data[contact.Created](t, evs[0]).Attempts, "two 503s, then a success")
	assert.Len(t, e.ipay.Contacts(), 1)
}

func TestServiceRejectsPermanentFailures(t *testing.T) {
	e := newTestEnv(t)
	e.ipay.Inject(sandbox.Fault{Times: 1, Code: "RPI", Message: "Invalid tag"})
	e.start(t)
	e.publish(t, command("rej-1"))
	evs := e.awaitEvents(t, 1, 10*time.Second)
	require.Equal(t, contact.SubjectFailed, evs[0].Type)
	d := data[contact.Failed](t, evs[0])
	assert.Equal(t, contact.ReasonRejected, d.Reason)
	assert.False(t, d.Retryable)
	require.NotNil(t, d.Upstream)
	assert.Equal(t, "RPI", d.Upstream.Code)
	assert.Equal(t, "Invalid tag", d.Upstream.Message)
	assert.Equal(t, 1, e.ipay.CreateCalls(), "a permanent failure is not retried")
}

func TestServiceExhaustsAfterMaxDeliver(t *testing.T) {
	e := newTestEnv(t)
	e.vars["MAX_DELIVER"] = "2"
	e.ipay.SetDown(true)
	e.start(t)
	e.publish(t, command("down-1"))
	evs := e.awaitEvents(t, 1, 15*time.Second)
	require.Equal(t, contact.SubjectFailed, evs[0].Type)
	d := data[contact.Failed](t, evs[0])
	assert.Equal(t, contact.ReasonExhausted, d.Reason)
	assert.True(t, d.Retryable, "exhausted failures are retryable")
	assert.Equal(t, e.ipay.CreateCalls(), d.Attempts, "attempts counts every create call of both deliveries")
	assert.Greater(t, d.Attempts, 2, "each delivery retried in process")
	require.NotNil(t, d.Upstream)
	assert.Equal(t, 503, d.Upstream.HTTPStatus)
	assert.JSONEq(t, command("down-1"), string(d.Command), "the command is carried for replay")
}

func TestServiceShutdownMidFlightLosesNothing(t *testing.T) {
	e := newTestEnv(t)
	e.vars["PROVIDER_TIMEOUT"] = "5s"
	e.ipay.Inject(sandbox.Fault{Latency: 300 * time.Millisecond}) // every create is slow
	svc := e.start(t)
	const n = 20
	for i := range n {
		e.publish(t, command(fmt.Sprintf("sd-%d", i)))
	}
	require.Eventually(t, func() bool { return e.ipay.CreateCalls() > 0 }, 10*time.Second, 5*time.Millisecond, "calls in flight")
	svc.stop()
	before := len(e.events(t))
	assert.Less(t, before, n, "the shutdown came mid-flight")

	e.ipay.ClearFaults()
	svc = e.start(t)
	e.awaitEvents(t, n, 30*time.Second)
	evs := byCommand(e.settle(t, svc, 30*time.Second))
	for i := range n {
		id := fmt.Sprintf("sd-%d", i)
		require.Len(t, evs[id], 1, "%s has exactly one outcome", id)
		assert.Equal(t, contact.SubjectCreated, evs[id][0].Type, id)
	}
	assert.Len(t, e.ipay.Contacts(), n, "one contact per command")
	assert.Zero(t, e.ipay.Duplicates(), "no duplicate contacts")
}

func TestServiceHealth(t *testing.T) {
	e := newTestEnv(t)
	svc := e.start(t)
	get := func(path string) (int, map[string]any) {
		res, err := http.Get("http://" + svc.httpAddr + path)
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var v map[string]any
		assert.NoError(t, json.Unmarshal(body, &v), "%s answers JSON", path)
		return res.StatusCode, v
	}
	code, _ := get("/healthz")
	assert.Equal(t, http.StatusOK, code)
	require.Eventually(t, func() bool { code, _ := get("/readyz"); return code == http.StatusOK },
		5*time.Second, 20*time.Millisecond, "ready once consuming")
	_, body := get("/readyz")
	assert.Equal(t, map[string]any{"nats": "ok", "consumer": "ok", "permissions": "ok"}, body["checks"])

	e.nats.Stop()
	require.Eventually(t, func() bool { code, _ := get("/readyz"); return code == http.StatusServiceUnavailable },
		5*time.Second, 20*time.Millisecond, "not ready while NATS is down")
	_, body = get("/readyz")
	assert.NotEmpty(t, body["problems"], "the body says what is wrong")
	e.nats.Restart()
	require.Eventually(t, func() bool { code, _ := get("/readyz"); return code == http.StatusOK },
		10*time.Second, 50*time.Millisecond, "ready again once NATS is back")
}

func TestServiceLogsNoSecretsNorPersonalData(t *testing.T) {
	e := newTestEnv(t)
	e.ipay.Inject(sandbox.Fault{Times: 1, Code: "RPI", Message: "Contact jane-1@example.com with mobile +919876543210 is invalid"})
	svc := e.start(t)
	e.publish(t, command("jane-1"))
	e.awaitEvents(t, 1, 10*time.Second)
	svc.stop()
	logs := svc.logs.String()
	assert.Contains(t, logs, "jane-1", "the commandId is logged")
	assert.NotContains(t, logs, "jane-1@example.com", "emails are masked")
	assert.NotContains(t, logs, "9876543210", "mobiles are masked")
	assert.NotContains(t, logs, "secret", "secrets are never logged")
}
