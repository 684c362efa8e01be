package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/sandbox"
)

// These tests inject the faults the service must ride through and check its
// guarantee: every command ends in exactly one terminal event, and the
// provider holds no duplicate contact.

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

func TestFaultKilledMidFlight(t *testing.T) {
	t.Parallel() // it mostly waits: for ack waits, backoff or token lifetimes
	e := newTestEnv(t)
	e.vars["ACK_WAIT"] = "4s" // redelivery of what the dead instance held
	e.vars["PROVIDER_TIMEOUT"] = "1s"
	e.ipay.Inject(sandbox.Fault{Latency: 400 * time.Millisecond}) // calls are in flight when it dies
	svc := e.start(t)
	cmds := ids("kill", 30)
	for _, id := range cmds {
		e.publish(t, command(id))
	}
	require.Eventually(t, func() bool { return e.ipay.CreateCalls() > 0 }, 5*time.Second, 5*time.Millisecond)
	svc.kill(t)
	inFlight := e.ipay.CreateCalls()

	e.ipay.ClearFaults()
	svc = e.start(t)
	e.awaitEvents(t, len(cmds), 60*time.Second)
	evs := e.settle(t, svc, 30*time.Second)
	assertExactlyOnce(t, evs, cmds)
	for _, ev := range evs {
		assert.Equal(t, contact.SubjectCreated, ev.Type, ev.Subject)
	}
	assert.Len(t, e.ipay.Contacts(), len(cmds), "one contact per command")
	assert.Zero(t, e.ipay.Duplicates(), "no duplicate contacts")
	t.Logf("create calls in flight at the kill: %d; reconciled by lookup afterwards", inFlight)
}

func TestFaultKilledDuringLastDelivery(t *testing.T) {
	t.Parallel() // it mostly waits: for ack waits, backoff or token lifetimes
	e := newTestEnv(t)
	e.vars["MAX_DELIVER"] = "1"
	e.vars["ACK_WAIT"] = "4s"
	e.vars["PROVIDER_TIMEOUT"] = "1s"
	e.ipay.Inject(sandbox.Fault{Times: 1, Hang: true}) // the one allowed delivery never gets an answer
	svc := e.start(t)
	e.publish(t, command("last-1"))
	require.Eventually(t, func() bool { return e.ipay.CreateCalls() == 1 }, 5*time.Second, 5*time.Millisecond)
	svc.kill(t)

	e.start(t)
	evs := e.awaitEvents(t, 1, 30*time.Second)
	require.Equal(t, contact.SubjectFailed, evs[0].Type)
	d := data[contact.Failed](t, evs[0])
	assert.Equal(t, contact.ReasonExhausted, d.Reason, "a command killed in its last delivery still gets its exhausted event")
	assert.True(t, d.Retryable)
	assert.Equal(t, 1, d.Attempts)
	assert.Equal(t, 1, e.ipay.CreateCalls(), "and no further create call")
}

func TestFaultNATSRestart(t *testing.T) {
	e := newTestEnv(t)
	e.vars["ACK_WAIT"] = "3s"
	e.vars["RETRY_MAX_ELAPSED"] = "2s"
	e.ipay.Inject(sandbox.Fault{Latency: 5 * time.Millisecond})
	svc := e.start(t)
	cmds := ids("restart", 200)
	for _, id := range cmds {
		e.publish(t, command(id))
	}
	e.awaitEvents(t, 30, 20*time.Second)
	e.nats.Restart() // same port, same store, mid-run
	e.awaitEvents(t, len(cmds), 90*time.Second)
	assertExactlyOnce(t, e.settle(t, svc, 30*time.Second), cmds)
	assert.Len(t, e.ipay.Contacts(), len(cmds))
	assert.Zero(t, e.ipay.Duplicates(), "no duplicate contacts")
}

func TestFaultAmbiguousCreatesAreReconciled(t *testing.T) {
	e := newTestEnv(t)
	e.vars["RETRY_MAX_ELAPSED"] = "10s"
	e.ipay.Inject(sandbox.Fault{Times: 2, CreateThenHang: true})
	e.pik.Inject(sandbox.Fault{Times: 2, CreateThenHang: true})
	e.start(t)
	cmds := []string{"amb-ip-1", "amb-ip-2", "amb-pik-1", "amb-pik-2"}
	for _, id := range cmds[:2] {
		e.publish(t, command(id))
	}
	for _, id := range cmds[2:] {
		e.publish(t, command(id, `"provider":"pik"`))
	}
	evs := e.awaitEvents(t, len(cmds), 30*time.Second)
	assertExactlyOnce(t, evs, cmds)
	for _, ev := range evs {
		require.Equal(t, contact.SubjectCreated, ev.Type, ev.Subject)
		d := data[contact.Created](t, ev)
		assert.Equal(t, true, d.Upstream["reconciled"], "%s was found by a lookup", ev.Subject)
	}
	assert.Equal(t, 2, e.ipay.CreateCalls(), "no second create after a timeout that created")
	assert.Equal(t, 2, e.pik.CreateCalls())
	assert.Zero(t, e.ipay.Duplicates()+e.pik.Duplicates())
}

func TestFaultMixedProviderErrors(t *testing.T) {
	e := newTestEnv(t)
	e.vars["RETRY_MAX_ELAPSED"] = "10s"
	e.vars["MAX_DELIVER"] = "10"
	e.vars["CIRCUIT_FAILURES"] = "100" // this test is about the classes, not the breaker
	for _, f := range []sandbox.Fault{
		{Times: 2, Status: 429, RetryAfter: 100 * time.Millisecond},
		{Times: 2, Status: 500},
		{Times: 2, Drop: true},
		{Times: 1, Code: "TUP"},
		{Times: 2, Code: "ISE"},
	} {
		e.ipay.Inject(f)
	}
	e.start(t)
	cmds := ids("mixed", 10)
	for _, id := range cmds {
		e.publish(t, command(id))
	}
	evs := e.awaitEvents(t, len(cmds), 30*time.Second)
	assertExactlyOnce(t, evs, cmds)
	for _, ev := range evs {
		assert.Equal(t, contact.SubjectCreated, ev.Type, ev.Subject)
	}
	assert.Len(t, e.ipay.Contacts(), len(cmds))
	assert.Zero(t, e.ipay.Duplicates(), "no duplicate contacts")
}

func TestFaultRepublishedCommandCreatesOnce(t *testing.T) {
	e := newTestEnv(t)
	seen := e.watchPublishes(t)
	e.start(t)
	e.publish(t, command("again-1"), contact.HeaderMsgID, "first")
	first := e.awaitEvents(t, 1, 10*time.Second)[0]
	// Published again with another message id: as after the duplicate window.
	e.publish(t, command("again-1"), contact.HeaderMsgID, "second")
	require.Eventually(t, func() bool { return len(seen()) == 2 }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, first.ID, seen()[1].ID, "the repeated outcome has the same event id")
	assert.Equal(t, first, seen()[1], "and the same content")
	assert.Len(t, e.events(t), 1, "the stream dropped the repeat within its window")
	assert.Equal(t, 1, e.ipay.CreateCalls(), "no second create call")
}

func TestFaultProviderOutage(t *testing.T) {
	t.Parallel() // it mostly waits: for ack waits, backoff or token lifetimes
	t.Run("recovers without exhausting", func(t *testing.T) {
		e := newTestEnv(t)
		e.vars["CONCURRENCY"] = "4"
		e.vars["MAX_DELIVER"] = "10"
		e.vars["RETRY_MAX_ELAPSED"] = "300ms"
		e.vars["RETRY_MAX_INTERVAL"] = "100ms"
		e.ipay.SetDown(true)
		e.start(t)
		cmds := ids("outage", 20)
		for _, id := range cmds {
			e.publish(t, command(id))
		}
		// Each command delivered twice over, on average, and handed back.
		require.Eventually(t, func() bool { return consumerInfoOf(t, e).Delivered.Consumer >= 2*uint64(len(cmds)) }, 30*time.Second, 20*time.Millisecond)
		assert.Empty(t, e.events(t), "nothing is decided while the provider is down and deliveries remain")
		e.ipay.SetDown(false)
		evs := e.awaitEvents(t, len(cmds), 30*time.Second)
		assertExactlyOnce(t, evs, cmds)
		for _, ev := range evs {
			assert.Equal(t, contact.SubjectCreated, ev.Type, ev.Subject)
		}
		assert.LessOrEqual(t, e.ipayCalls.peak.Load(), int32(4), "never more than CONCURRENCY calls open")
	})
	t.Run("exhausts no sooner than the retry schedule allows", func(t *testing.T) {
		e := newTestEnv(t)
		e.vars["MAX_DELIVER"] = "4"
		e.vars["RETRY_MAX_ELAPSED"] = "300ms"
		e.vars["RETRY_MAX_INTERVAL"] = "100ms"
		e.ipay.SetDown(true)
		e.start(t)
		start := time.Now()
		e.publish(t, command("down-long"))
		evs := e.awaitEvents(t, 1, 30*time.Second)
		took := time.Since(start)
		assert.Equal(t, contact.ReasonExhausted, data[contact.Failed](t, evs[0]).Reason)
		// Four deliveries, each retrying until less than one interval of
		// its 300ms budget is left, with three 100ms redelivery delays
		// between them.
		assert.GreaterOrEqual(t, took, 4*(300-100)*time.Millisecond+3*100*time.Millisecond,
			"the delivery budget is spent on the backoff schedule, not in a burst")
	})
}
