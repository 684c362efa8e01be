package client_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/client"
)

// publisherPermissions are the permissions docs/PUBLISHING.md lists for a
// publisher that waits for outcomes: nothing more.
var publisherPermissions = &server.Permissions{
	Publish: &server.SubjectPermission{Allow: []string{
		"contact.create",
		"$JS.API.STREAM.INFO.CONTACT_COMMANDS",
		"$JS.API.STREAM.INFO.CONTACT_EVENTS",
		"$JS.API.STREAM.INFO.KV_CONTACT_RECORDS",
		"$JS.API.STREAM.MSG.GET.CONTACT_COMMANDS",
		"$JS.API.DIRECT.GET.KV_CONTACT_RECORDS.>",
		"$JS.API.CONSUMER.CREATE.CONTACT_EVENTS.>",
		"$JS.API.CONSUMER.MSG.NEXT.CONTACT_EVENTS.>",
		"$JS.API.CONSUMER.DELETE.CONTACT_EVENTS.>",
	}},
	Subscribe: &server.SubjectPermission{Allow: []string{
		"contact.created",
		"contact.failed",
		"_INBOX.>",
	}},
}

// TestPublisherPermissions: a publisher allowed only what
// docs/PUBLISHING.md lists publishes, waits (a new command, a duplicate,
// a command the stream names), and reads Settled.
func TestPublisherPermissions(t *testing.T) {
	t.Parallel()
	w := newWorldWith(t, func(o *server.Options) {
		o.Users = []*server.User{
			{Username: "service", Password: "service-pw"},
			{Username: "publisher", Password: "publisher-pw", Permissions: publisherPermissions},
		}
	}, "service", "service-pw")
	w.startService(t)
	var violations []error
	nc, err := nats.Connect(w.srv.URL("publisher", "publisher-pw"), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		violations = append(violations, err)
	}))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	c := client.New(js, client.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	require.NoError(t, c.CheckStreams(ctx))
	o, err := c.PublishAndWait(ctx, jane("perm-1"))
	require.NoError(t, err)
	assert.NotNil(t, o.Created)
	o, err = c.PublishAndWait(ctx, jane("perm-1"))
	require.NoError(t, err, "a duplicate")
	assert.True(t, o.Ack.Duplicate)
	body, err := json.Marshal(jane("perm-1"))
	require.NoError(t, err)
	_, ok, err := c.Settled(ctx, body)
	require.NoError(t, err)
	assert.True(t, ok)
	_, err = c.PublishAndWait(ctx, jane("tab\tid"))
	var failed *client.FailedError
	require.ErrorAs(t, err, &failed, "a command the stream names, found by reading the event stream")
	nc.Flush()
	assert.Empty(t, violations, "no permission violation")
}
