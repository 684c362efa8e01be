package stream

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/natstest"
	"github.com/contactrelay/contactrelay/internal/provision"
)

// TestRecordsUnderAJetStreamDomain writes records, with and without
// waiting, through a JetStream context bound to a domain, as a service on
// a leaf node or in a domain-scoped account has.
func TestRecordsUnderAJetStreamDomain(t *testing.T) {
	srv := natstest.Start(t, func(o *server.Options) { o.JetStreamDomain = "hub" })
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.NewWithDomain(nc, "hub")
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, provision.Setup(ctx, js, provision.Topology{}))
	r, err := OpenRecords(ctx, js, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(r.Close)

	rev, ok, err := r.Put(ctx, "c.a2V5", []byte(`{"v":1}`), 0, true)
	require.NoError(t, err)
	require.True(t, ok)
	done := make(chan error, 1)
	r.PutAsync("c.a2V5", []byte(`{"v":2}`), rev, true, func(_ uint64, ok bool, err error) {
		if err == nil && !ok {
			err = assert.AnError
		}
		done <- err
	})
	select {
	case err := <-done:
		require.NoError(t, err, "the write without waiting reaches the bucket through the domain")
	case <-time.After(10 * time.Second):
		t.Fatal("no answer")
	}
	val, _, err := r.Get(ctx, "c.a2V5")
	require.NoError(t, err)
	assert.JSONEq(t, `{"v":2}`, string(val))
}

func TestPutPrefixIsTheKeyValueAPIs(t *testing.T) {
	srv := natstest.Start(t, func(o *server.Options) { o.JetStreamDomain = "hub" })
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	for name, tt := range map[string]struct {
		js   func() (jetstream.JetStream, error)
		want string
	}{
		"default":          {func() (jetstream.JetStream, error) { return jetstream.New(nc) }, ""},
		"domain":           {func() (jetstream.JetStream, error) { return jetstream.NewWithDomain(nc, "hub") }, "$JS.hub.API."},
		"API prefix":       {func() (jetstream.JetStream, error) { return jetstream.NewWithAPIPrefix(nc, "JS.acc.API") }, "JS.acc.API."},
		"default, spelled": {func() (jetstream.JetStream, error) { return jetstream.NewWithAPIPrefix(nc, "$JS.API.") }, ""},
	} {
		t.Run(name, func(t *testing.T) {
			js, err := tt.js()
			require.NoError(t, err)
			assert.Equal(t, tt.want, putPrefix(js))
		})
	}
}
