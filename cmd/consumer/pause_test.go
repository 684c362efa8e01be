package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/pause"
	"github.com/contactrelay/contactrelay/internal/sandbox"
)

// readyPauses returns the providers an instance's /readyz reports paused.
func readyPauses(t testing.TB, svc *instance) []string {
	t.Helper()
	resp, err := http.Get("http://" + svc.httpAddr + "/readyz")
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct {
		Pauses []pause.State `json:"pauses"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	var out []string
	for _, p := range body.Pauses {
		out = append(out, p.Provider)
	}
	return out
}

// maxHeld returns the most deliveries held of any one command message.
func maxHeld(t testing.TB, e *testEnv) int {
	t.Helper()
	kv, err := e.js.KeyValue(context.Background(), pause.Bucket)
	require.NoError(t, err)
	lister, err := kv.ListKeysFiltered(context.Background(), "held.>")
	require.NoError(t, err)
	most := 0
	for k := range lister.Keys() {
		if en, err := kv.Get(context.Background(), k); err == nil {
			n, _ := strconv.Atoi(string(en.Value()))
			most = max(most, n)
		}
	}
	return most
}

// A provider paused with two instances running: once both report it, no
// call to it starts, its commands are held past MAX_DELIVER without being
// exhausted, the other provider's commands flow meanwhile, and after the
// resume all 200 are created exactly once.
func TestPauseHoldsAProviderFleetWide(t *testing.T) {
	e := newTestEnv(t, func(c *sandbox.InstantPayConfig) { c.Latency = 300 * time.Millisecond })
	e.quietLogs = true
	e.vars["PAUSE_HOLD_DELAY"] = "50ms"
	e.vars["LOG_LEVEL"] = "info"
	e.vars["PROVIDER_TIMEOUT"] = "2s"
	var ipayRequests atomic.Int64
	e.ipayCalls.seen = func(*http.Request) { ipayRequests.Add(1) }
	a, b := e.start(t), e.start(t)

	var ids []string
	for i := range 100 {
		ids = append(ids, fmt.Sprintf("ip-%03d", i))
		e.publish(t, command(ids[len(ids)-1]))
	}
	for i := range 50 {
		ids = append(ids, fmt.Sprintf("pik-%03d", i))
		e.publish(t, command(ids[len(ids)-1], `"provider":"pik"`))
	}
	require.Eventually(t, func() bool { return len(e.ipay.Contacts()) > 0 }, 10*time.Second, 5*time.Millisecond, "InstantPay creates contacts")

	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"pause", "--reason", "maintenance", "instantpay"}, e.getenv, nil, &out, &out), out.String())
	assert.Contains(t, out.String(), "instantpay paused")
	require.Eventually(t, func() bool {
		return assert.ObjectsAreEqual([]string{"instantpay"}, readyPauses(t, a)) && assert.ObjectsAreEqual([]string{"instantpay"}, readyPauses(t, b))
	}, 5*time.Second, 5*time.Millisecond, "both instances report the pause")
	// Calls that started before are let finish.
	require.Eventually(t, func() bool { return e.ipayCalls.now.Load() == 0 }, 5*time.Second, 5*time.Millisecond)
	calls := ipayRequests.Load()
	created := len(e.ipay.Contacts())
	require.Less(t, created, 100, "InstantPay still had commands waiting once its calls stopped")

	// The other provider flows meanwhile, including commands published
	// after the pause.
	for i := 50; i < 100; i++ {
		ids = append(ids, fmt.Sprintf("pik-%03d", i))
		e.publish(t, command(ids[len(ids)-1], `"provider":"pik"`))
	}
	require.Eventually(t, func() bool { return len(e.pik.Contacts()) == 100 }, 20*time.Second, 10*time.Millisecond, "PIK's commands are created while InstantPay is paused")
	// Held past MAX_DELIVER (3) deliveries, and none exhausted.
	require.Eventually(t, func() bool { return maxHeld(t, e) > 6 }, 20*time.Second, 20*time.Millisecond, "commands are held more often than MAX_DELIVER")
	assert.Equal(t, calls, ipayRequests.Load(), "no call to InstantPay starts once both instances report the pause")
	assert.Equal(t, created, len(e.ipay.Contacts()))
	for _, ev := range e.events(t) {
		assert.Equal(t, contact.SubjectCreated, ev.Type, "no command fails while held: %s", ev.Subject)
	}

	out.Reset()
	require.NoError(t, run(context.Background(), []string{"resume", "instantpay"}, e.getenv, nil, &out, &out), out.String())
	assert.Contains(t, out.String(), "instantpay resumed")
	evs := e.awaitEvents(t, 200, 30*time.Second)
	assertExactlyOnce(t, evs, ids)
	for _, ev := range evs {
		assert.Equal(t, contact.SubjectCreated, ev.Type, "%s is created", ev.Subject)
	}
	assert.Len(t, e.ipay.Contacts(), 100)
	assert.Zero(t, e.ipay.Duplicates(), "no contact is created twice")
	require.Eventually(t, func() bool { return len(readyPauses(t, a)) == 0 && len(readyPauses(t, b)) == 0 }, 5*time.Second, 5*time.Millisecond, "both instances report the resume")
}
