package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/natstest"
	"github.com/contactrelay/contactrelay/internal/provision"
)

// deep returns a JSON object nested n levels deep.
func deep(n int) string {
	return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n)
}

// TestPoisonMessagesAreAnsweredOnce sends the shapes that once stopped,
// looped or blinded the service, through a real server: each gets exactly
// one contact.failed on its first delivery, the service keeps running, and
// a good command sent after them is created.
func TestPoisonMessagesAreAnsweredOnce(t *testing.T) {
	e := newTestEnv(t)
	e.quietLogs = true
	svc := e.start(t)

	noID := fmt.Sprintf(`{"name":"Jane Doe","email":"noid@example.com","mobile":"+919876543210","tagId":%q}`, tagID)
	noise := make([]byte, 900<<10)
	_, _ = rand.Read(noise)
	noise[0] = 0xff // not UTF-8, whatever the rest is
	tests := []struct {
		name   string
		body   string
		hdr    []string
		id     string // the commandId the event carries; "" = <stream>:<seq>
		reason contact.Reason
	}{
		{"a 5,000-character Nats-Msg-Id", noID, []string{"Nats-Msg-Id", strings.Repeat("x", 5000)}, "", contact.ReasonMalformed},
		{"a 900 KiB body of noise", string(noise), []string{"Nats-Msg-Id", "p-noise"}, "p-noise", contact.ReasonMalformed},
		{"10,000 levels of nesting", deep(10000), []string{"Nats-Msg-Id", "p-deep"}, "p-deep", contact.ReasonMalformed},
		{"10,000 levels inside pik", command("p-deep-pik", `"provider":"pik"`, `"pik":`+deep(10000)), nil, "", contact.ReasonMalformed},
		{"a 600-byte Nats-Msg-Id names it", noID, []string{"Nats-Msg-Id", strings.Repeat("é", 300)}, strings.Repeat("é", 300), ""},
		{"a right-to-left override in the name", strings.Replace(command("p-rlo"), "Jane Doe", "Jane\u202eeoD", 1), nil, "p-rlo", contact.ReasonInvalid},
		{"a name of zero-width spaces", strings.Replace(command("p-zw"), "Jane Doe", "\u200b\u200b", 1), nil, "p-zw", contact.ReasonInvalid},
		{"a NUL in the name", strings.Replace(command("p-nul"), "Jane Doe", `Jane\u0000Doe`, 1), nil, "p-nul", contact.ReasonInvalid},
	}
	for _, tt := range tests {
		e.publish(t, tt.body, tt.hdr...)
	}
	e.publish(t, command("p-after"))
	evs := e.awaitEvents(t, len(tests)+1, 20*time.Second)
	require.Len(t, evs, len(tests)+1, "one event per command")
	byID := byCommand(evs)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := tt.id
			if id == "" {
				id = fmt.Sprintf("%s:%d", provision.CommandStream, i+1)
			}
			got := byID[id]
			require.Len(t, got, 1, "exactly one event for %.40s", id)
			if tt.reason == "" {
				assert.Equal(t, contact.SubjectCreated, got[0].Type, "a long id keyed by digest in the record")
				return
			}
			d := data[contact.Failed](t, got[0])
			assert.Equal(t, tt.reason, d.Reason, d.Message)
			assert.Zero(t, d.Attempts, "no provider call")
		})
	}
	require.Len(t, byID["p-after"], 1)
	assert.Equal(t, contact.SubjectCreated, byID["p-after"][0].Type, "the service went on")
	select {
	case <-svc.finished:
		t.Fatalf("the service stopped: %v", svc.err)
	default:
	}
	require.Eventually(t, func() bool {
		info := consumerInfoOf(t, e)
		return info.NumAckPending == 0 && info.NumPending == 0
	}, 10*time.Second, 20*time.Millisecond, "everything settled")
	assert.Zero(t, scrape(t, svc.httpAddr)["contactrelay_redeliveries_total"], "nothing was delivered twice")
	assert.Len(t, e.ipay.Contacts(), 2, "only the good commands reached a provider")
}

// TestRateLimitedBacklogIsNotDeliveredTwice: behind a rate limit, a
// backlog is fetched no faster than it can start, and what is fetched is
// kept alive, so no command waits out its ack wait and comes again.
func TestRateLimitedBacklogIsNotDeliveredTwice(t *testing.T) {
	t.Parallel() // it mostly waits: on backoff, an ack wait or a rate limit
	e := newTestEnv(t)
	e.quietLogs = true
	e.vars["INSTANTPAY_RATE_LIMIT"] = "40"
	e.vars["ACK_WAIT"] = "1s"
	e.vars["CONCURRENCY"] = "64"
	const n = 160 // four seconds of the rate limit: four ack waits
	ids := make([]string, n)
	require.NoError(t, runSetup(t, e))
	for i := range n {
		ids[i] = fmt.Sprintf("rl-%03d", i)
		e.publish(t, command(ids[i]))
	}
	svc := e.start(t)
	evs := e.awaitEvents(t, n, 60*time.Second)
	assertExactlyOnce(t, evs, ids)
	assert.Zero(t, scrape(t, svc.httpAddr)["contactrelay_redeliveries_total"], "no command was delivered twice")
	assert.Len(t, e.ipay.Contacts(), n)
}

func consumerInfoOf(t testing.TB, e *testEnv) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := e.js.Consumer(context.Background(), provision.CommandStream, provision.Durable)
	require.NoError(t, err)
	info, err := c.Info(context.Background())
	require.NoError(t, err)
	return info
}

func runSetup(t testing.TB, e *testEnv) error {
	t.Helper()
	return run(context.Background(), []string{"setup"}, e.getenv, nil, io.Discard, io.Discard)
}

// TestServiceUnderAJetStreamDomain runs the service with NATS_JS_DOMAIN:
// every JetStream request, and every record write, goes through the
// domain's API.
func TestServiceUnderAJetStreamDomain(t *testing.T) {
	srv := natstest.Start(t, func(o *server.Options) { o.JetStreamDomain = "hub" })
	e := newTestEnvOn(t, srv.ClientURL(), srv.Connect)
	e.nats = srv
	e.vars["NATS_JS_DOMAIN"] = "hub"
	e.start(t)
	e.publish(t, command("dom-1"))
	evs := e.awaitEvents(t, 1, 10*time.Second)
	assert.Equal(t, contact.SubjectCreated, evs[0].Type)
	e.publish(t, command("dom-1", `"name":"Someone Else"`))
	evs = e.awaitEvents(t, 2, 10*time.Second)
	assert.Equal(t, contact.ReasonConflict, data[contact.Failed](t, evs[1]).Reason, "the record was written and read through the domain")
}

// TestWithoutJetStreamEveryCommandSaysSo: against a server without
// JetStream every command says what is wrong, and exits 2.
func TestWithoutJetStreamEveryCommandSaysSo(t *testing.T) {
	srv := natstest.Start(t, func(o *server.Options) { o.JetStream = false })
	env := map[string]string{"NATS_URL": srv.ClientURL()}
	getenv := func(k string) string { return env[k] }
	for _, args := range [][]string{
		{"setup"},
		{"failures"},
		{"replay"},
		{"publish", "--name", "Jane", "--email", "jane@example.com", "--mobile", "+919876543210", "--tag-id", tagID, "--provider", "pik"},
	} {
		t.Run(args[0], func(t *testing.T) {
			err := run(context.Background(), args, getenv, nil, io.Discard, io.Discard)
			require.Error(t, err)
			assert.Equal(t, 2, exitCode(err))
			assert.Contains(t, err.Error(), "JetStream is not enabled")
		})
	}
}
