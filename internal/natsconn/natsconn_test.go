package natsconn

import (
	"context"
	"log/slog"
	"strings"
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
