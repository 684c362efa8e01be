package main

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/audit"
	"github.com/contactrelay/contactrelay/internal/provision"
)

// 'consumer console' takes the accounts, roles and session settings from
// its environment, shares its sign-outs in CONTACT_CONSOLE_SESSIONS and
// audits its actions in CONTACT_AUDIT.
func TestConsoleCommandWiresAccountsSessionsAndAudit(t *testing.T) {
	e := newTestEnv(t)
	e.start(t) // its setup makes the streams and buckets
	e.publish(t, invalidCommand("wired-1"))
	e.awaitEvents(t, 1, 10*time.Second)
	key := filepath.Join(t.TempDir(), "key")
	require.NoError(t, os.WriteFile(key, []byte("a session key of more than thirty-two bytes"), 0o600))
	env := map[string]string{
		"NATS_URL": e.vars["NATS_URL"], "CONSOLE_ADDR": "127.0.0.1:0",
		"CONSOLE_USERS_FILE": writeUsers(t, "ana", "ana's long password"), "CONSOLE_OPERATORS": "ana",
		"CONSOLE_SESSION_KEY_FILE": key, "CONSOLE_SESSION_IDLE": "10m", "LOG_LEVEL": "error",
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"console"}, func(k string) string { return env[k] }, nil, &out, &errOut)
	}()
	t.Cleanup(func() { cancel(); <-done })
	var base string
	require.Eventually(t, func() bool {
		m := regexp.MustCompile(`console: (http://\S+)/ `).FindStringSubmatch(out.String())
		if m != nil {
			base = m[1]
		}
		return m != nil
	}, 10*time.Second, 10*time.Millisecond, "the console prints its URL: %s", errOut.String())
	assert.Contains(t, out.String(), "CONSOLE_USERS_FILE")

	c, token := consoleSession(t, base, "ana", "ana's long password")
	awaitConsole(t, c, base+"/failure?id=wired-1", `id="discard-one"`)
	resp, body := consolePost(t, c, base+"/discard", url.Values{"command": {"wired-1"}, "csrf": {token}})
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	p, err := audit.List(context.Background(), e.js, audit.Query{})
	require.NoError(t, err)
	require.Len(t, p.Entries, 1)
	assert.Equal(t, audit.ActionDiscard, p.Entries[0].Action)
	assert.Equal(t, "ana", p.Entries[0].User)

	resp, _ = consolePost(t, c, base+"/logout", url.Values{"csrf": {token}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	kv, err := e.js.KeyValue(context.Background(), provision.ConsoleSessionBucket)
	require.NoError(t, err)
	keys, err := kv.ListKeys(context.Background())
	require.NoError(t, err)
	var n int
	for range keys.Keys() {
		n++
	}
	assert.Equal(t, 1, n, "the sign-out is shared")
}
