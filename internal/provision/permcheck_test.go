package provision

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/natstest"
	"github.com/contactrelay/contactrelay/internal/pause"
)

// permsServer starts a server with an admin, a user denied contact.failed
// and the record and pause buckets' subjects, and one ("nostatus") who may
// not subscribe to the status requests; the streams are set up.
func permsServer(t *testing.T) (*natstest.Server, jetstream.JetStream) {
	t.Helper()
	srv := natstest.Start(t, func(o *server.Options) {
		o.Users = []*server.User{
			natstest.User("admin", "pw"),
			natstest.User("denied", "pw", contact.SubjectFailed, "$KV."+RecordBucket+".>", "$KV."+pause.Bucket+".>"),
			{Username: "nostatus", Password: "pw", Permissions: &server.Permissions{
				Subscribe: &server.SubjectPermission{Deny: []string{StatusSubject}},
			}},
		}
	})
	nc, err := nats.Connect(srv.URL("admin", "pw"))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.NoError(t, Setup(t.Context(), js, Topology{}))
	return srv, js
}

func connectAs(t *testing.T, srv *natstest.Server, user string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(srv.URL(user, "pw"), opts...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

// storedMsgs returns how many messages each stream holds.
func storedMsgs(t *testing.T, js jetstream.JetStream) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, name := range []string{CommandStream, EventStream, "KV_" + RecordBucket} {
		s, err := js.Stream(t.Context(), name)
		require.NoError(t, err)
		info, err := s.Info(t.Context())
		require.NoError(t, err)
		out[name] = info.State.Msgs
	}
	return out
}

func TestCheckPublishAgainstTheServer(t *testing.T) {
	srv, js := permsServer(t)
	ctx := t.Context()

	t.Run("allowed", func(t *testing.T) {
		nc := connectAs(t, srv, "admin")
		start := time.Now()
		assert.NoError(t, CheckPublish(ctx, nc, PublishSubjects()), "every subject is allowed")
		assert.Less(t, time.Since(start), time.Second, "an allowed subject is answered at once")
	})
	t.Run("denied", func(t *testing.T) {
		var handled atomic.Int32
		nc := connectAs(t, srv, "denied", nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { handled.Add(1) }))
		err := CheckPublish(ctx, nc, PublishSubjects())
		require.ErrorIs(t, err, ErrPublishRefused)
		var refused *PublishRefusedError
		require.ErrorAs(t, err, &refused)
		assert.Equal(t, []string{contact.SubjectFailed, PublishSubjects()[2], PublishSubjects()[5]}, refused.Subjects,
			"the refused subjects, in order (the pauses' too), and not contact.created")
		assert.Equal(t, "$KV.CONTACT_PAUSES.held.CONTACT_COMMANDS.0", PublishSubjects()[5], "a held command's count")
		assert.Contains(t, err.Error(), "contact.failed")
		require.NoError(t, nc.Flush())
		assert.Eventually(t, func() bool { return handled.Load() > 0 }, time.Second, 10*time.Millisecond,
			"the caller's error handler still hears of the violation")
	})
	t.Run("no streams", func(t *testing.T) {
		// Without streams nothing answers but the server: no responders,
		// which is a publish let through all the same.
		nc := connectAs(t, srv, "admin")
		assert.NoError(t, CheckPublish(ctx, nc, []string{"contact.nowhere"}))
	})
	t.Run("nothing stored", func(t *testing.T) {
		assert.Equal(t, map[string]uint64{CommandStream: 0, EventStream: 0, "KV_" + RecordBucket: 0}, storedMsgs(t, js),
			"no probe was stored in any stream")
	})
	t.Run("a closed connection is no refusal", func(t *testing.T) {
		nc := connectAs(t, srv, "admin")
		nc.Close()
		err := CheckPublish(ctx, nc, []string{contact.SubjectFailed})
		require.Error(t, err)
		assert.NotErrorIs(t, err, ErrPublishRefused)
	})
}

func TestCheckSubscribeAgainstTheServer(t *testing.T) {
	srv, _ := permsServer(t)
	ctx := t.Context()
	assert.Equal(t, []string{"contactrelay.status"}, SubscribeSubjects())

	t.Run("allowed", func(t *testing.T) {
		nc := connectAs(t, srv, "admin")
		assert.NoError(t, CheckSubscribe(ctx, nc, SubscribeSubjects()))
	})
	t.Run("denied", func(t *testing.T) {
		var handled atomic.Int32
		nc := connectAs(t, srv, "nostatus", nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { handled.Add(1) }))
		err := CheckSubscribe(ctx, nc, append([]string{"contactrelay.other"}, SubscribeSubjects()...))
		require.ErrorIs(t, err, ErrSubscribeRefused)
		var refused *SubscribeRefusedError
		require.ErrorAs(t, err, &refused)
		assert.Equal(t, []string{StatusSubject}, refused.Subjects, "only the refused subject")
		assert.Eventually(t, func() bool { return handled.Load() > 0 }, time.Second, 10*time.Millisecond,
			"the caller's error handler still hears of the violation")
	})
	t.Run("a closed connection is no refusal", func(t *testing.T) {
		nc := connectAs(t, srv, "admin")
		nc.Close()
		err := CheckSubscribe(ctx, nc, SubscribeSubjects())
		require.Error(t, err)
		assert.NotErrorIs(t, err, ErrSubscribeRefused)
	})
}
