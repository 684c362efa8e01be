package natsconn

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/config"
	"github.com/contactrelay/contactrelay/internal/natstest"
)

// TestInboxPrefix: a connection's replies come on NATS_INBOX_PREFIX, so a
// user allowed to subscribe to its own prefix only gets its JetStream
// answers; with nats.go's default prefix it gets none.
func TestInboxPrefix(t *testing.T) {
	s := natstest.Start(t, func(o *server.Options) {
		o.Users = []*server.User{{Username: "svc", Password: "svc-password", Permissions: &server.Permissions{
			Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX_service.>"}},
		}}}
	})
	for _, tc := range []struct {
		prefix string
		ok     bool
	}{
		{"_INBOX_service", true},
		{"", false}, // nats.go's _INBOX
	} {
		t.Run("prefix "+tc.prefix, func(t *testing.T) {
			nc, err := Connect(config.Config{NATSURL: s.URL("svc", "svc-password"), NATSInboxPrefix: tc.prefix}, "test", slog.New(slog.DiscardHandler))
			require.NoError(t, err)
			defer nc.Close()
			if tc.prefix != "" {
				assert.True(t, strings.HasPrefix(nc.NewInbox(), tc.prefix+"."), "an inbox under the prefix: %s", nc.NewInbox())
			}
			js, err := JetStream(nc, config.Config{})
			require.NoError(t, err)
			// A reply to an inbox the user may not read never comes.
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			_, err = js.AccountInfo(ctx)
			if tc.ok {
				assert.NoError(t, err, "the JetStream answer reaches the prefix's inbox")
			} else {
				assert.Error(t, err, "the default inbox is not the user's")
			}
		})
	}
}

// TestRefusalsAreSaid: what the server refuses a tool's user is said at
// once, once per subject, while the refused request itself only times
// out.
func TestRefusalsAreSaid(t *testing.T) {
	s := natstest.Start(t, func(o *server.Options) {
		o.Users = []*server.User{{Username: "viewer", Password: "viewer-password", Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"$JS.API.STREAM.INFO.>"}},
		}}}
	})
	var said syncBuffer
	nc, err := Connect(config.Config{NATSURL: s.URL("viewer", "viewer-password")}, "test", slog.New(slog.DiscardHandler), refusals(&said))
	require.NoError(t, err)
	defer nc.Close()
	js, err := JetStream(nc, config.Config{})
	require.NoError(t, err)
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err = js.Stream(ctx, "CONTACT_FAILURES")
		cancel()
		require.Error(t, err, "a refused request is not answered")
	}
	_, err = js.AccountInfo(context.Background())
	require.NoError(t, err, "what the user may do still works")
	require.Eventually(t, func() bool { return strings.Contains(said.String(), "CONTACT_FAILURES") }, 5*time.Second, 10*time.Millisecond)
	out := said.String()
	assert.Equal(t, 1, strings.Count(out, "\n"), "said once: %s", out)
	assert.Contains(t, out, `consumer: the NATS server refused this user: Permissions Violation for Publish to "$JS.API.STREAM.INFO.CONTACT_FAILURES" (`)
	assert.Contains(t, out, "docs/OPERATIONS.md")
}

// syncBuffer is a bytes.Buffer safe for the connection's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
