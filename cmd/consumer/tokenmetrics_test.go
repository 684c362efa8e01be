package main

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/sandbox"
)

// tokenSeries returns the token requests the service counted for PIK, by
// result.
func tokenSeries(t *testing.T, httpAddr string) map[string]float64 {
	t.Helper()
	m := scrape(t, httpAddr)
	out := map[string]float64{}
	for _, result := range []string{"ok", "transient", "permanent", "ambiguous"} {
		if v := m[`contactrelay_provider_requests_total{operation="token",provider="pik",result="`+result+`"}`]; v != 0 {
			out[result] = v
		}
	}
	return out
}

func TestTokenRequestsAreCountedOncePerRequest(t *testing.T) {
	t.Run("granted, at start and after a refused token", func(t *testing.T) {
		e := newTestEnv(t)
		// The first create answers 401: the client fetches a new token and
		// creates again.
		e.pik.Inject(sandbox.Fault{Times: 1, Status: http.StatusUnauthorized})
		svc := e.start(t)
		e.publish(t, command("tok-ok", `"provider":"pik"`))
		evs := e.awaitEvents(t, 1, 10*time.Second)
		assert.Equal(t, contact.SubjectCreated, evs[0].Type)
		assert.Equal(t, 2, e.pik.TokenRequests(), "one token at start, one to replace the refused one")
		assert.Equal(t, map[string]float64{"ok": 2}, tokenSeries(t, svc.httpAddr), "every token request is counted once")
	})

	t.Run("refused, with many commands waiting", func(t *testing.T) {
		e := newTestEnv(t)
		e.vars["PIK_APP_SECRET"] = "not-the-app-secret"
		require.NoError(t, run(t.Context(), []string{"setup"}, e.getenv, nil, io.Discard, io.Discard))
		// A backlog before the service starts, so that commands wait for
		// the same token requests.
		for i := range 12 {
			e.publish(t, command(fmt.Sprintf("tok-refused-%d", i), `"provider":"pik"`))
		}
		svc := e.start(t)
		e.awaitEvents(t, 12, 20*time.Second)
		want := float64(e.pik.TokenRequests())
		assert.Equal(t, map[string]float64{"permanent": want}, tokenSeries(t, svc.httpAddr),
			"every refused token request is counted once, not once per command that waited for it")
		assert.Zero(t, scrape(t, svc.httpAddr)[`contactrelay_provider_requests_total{operation="create",provider="pik",result="permanent"}`],
			"no create request was made")
	})
}
