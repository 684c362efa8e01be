package stream

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/natstest"
	"github.com/contactrelay/contactrelay/internal/provision"
)

// setup starts a server and sets up the service's resources on it.
func setup(t *testing.T, topo provision.Topology) (*natstest.Server, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	srv := natstest.Start(t, nil)
	nc, js := srv.Connect(t)
	require.NoError(t, provision.Setup(context.Background(), js, topo))
	return srv, nc, js
}

func TestRecordsExpire(t *testing.T) {
	t.Parallel()
	_, _, js := setup(t, provision.Topology{})
	ctx := context.Background()
	r, err := OpenRecords(ctx, js, 5*time.Second)
	require.NoError(t, err)
	defer r.Close()
	r.TTL = time.Second
	rev, ok, err := r.Put(ctx, "c.a", []byte("1"), 0, true)
	require.NoError(t, err)
	require.True(t, ok)
	_, ok, err = r.Put(ctx, "c.a", []byte("2"), rev, true)
	require.NoError(t, err)
	require.True(t, ok, "an update with a TTL")
	require.Eventually(t, func() bool {
		_, rev, err := r.Get(ctx, "c.a")
		return err == nil && rev == 0
	}, 10*time.Second, 100*time.Millisecond, "the record expires")
	_, ok, err = r.Put(ctx, "c.a", []byte("3"), 0, true)
	require.NoError(t, err)
	assert.True(t, ok, "an expired key is created anew")
}

func TestRecordsCompareAndSet(t *testing.T) {
	_, _, js := setup(t, provision.Topology{})
	ctx := context.Background()
	r, err := OpenRecords(ctx, js, 5*time.Second)
	require.NoError(t, err)
	defer r.Close()
	val, rev, err := r.Get(ctx, "c.a")
	require.NoError(t, err)
	assert.Zero(t, rev, "a missing key has revision zero")
	assert.Nil(t, val)
	checkCompareAndSet(t, r)
}

// checkCompareAndSet writes key c.a (which must not exist yet) through
// every path, with and without waiting, with stale revisions too.
func checkCompareAndSet(t *testing.T, r *Records) {
	t.Helper()
	ctx := context.Background()
	rev1, ok, err := r.Put(ctx, "c.a", []byte("one"), 0, true)
	require.NoError(t, err)
	require.True(t, ok)
	_, ok, err = r.Put(ctx, "c.a", []byte("again"), 0, true)
	require.NoError(t, err)
	assert.False(t, ok, "create fails on an existing key")

	rev2, ok, err := r.Put(ctx, "c.a", []byte("two"), rev1, true)
	require.NoError(t, err)
	require.True(t, ok)
	_, ok, err = r.Put(ctx, "c.a", []byte("stale"), rev1, true)
	require.NoError(t, err, "a stale revision is a conflict, not an error")
	assert.False(t, ok, "an update over a stale revision fails")

	done := make(chan error, 1)
	r.PutAsync("c.a", []byte("stale"), rev1, true, func(_ uint64, ok bool, err error) {
		if err == nil && ok {
			err = errors.New("written over a stale revision")
		}
		done <- err
	})
	select {
	case err := <-done:
		assert.NoError(t, err, "without waiting too, a stale revision is a conflict")
	case <-time.After(10 * time.Second):
		t.Fatal("no answer")
	}

	val, rev, err := r.Get(ctx, "c.a")
	require.NoError(t, err)
	assert.Equal(t, "two", string(val))
	assert.Equal(t, rev2, rev)
}

func TestRecordsPutAsync(t *testing.T) {
	srv, _, _ := setup(t, provision.Topology{})
	nc, js := srv.Connect(t)
	ctx := context.Background()
	r, err := OpenRecords(ctx, js, 5*time.Second)
	require.NoError(t, err)
	type answer struct {
		rev uint64
		ok  bool
		err error
	}
	put := func(key, val string, rev uint64) answer {
		ch := make(chan answer, 1)
		r.PutAsync(key, []byte(val), rev, true, func(rev uint64, ok bool, err error) { ch <- answer{rev, ok, err} })
		select {
		case a := <-ch:
			return a
		case <-time.After(10 * time.Second):
			t.Fatal("no answer")
			return answer{}
		}
	}

	create := put("c.a", "one", 0)
	assert.Error(t, create.err, "a create is refused: it takes the synchronous way")
	assert.False(t, create.ok)
	rev1, ok, err := r.Put(ctx, "c.a", []byte("one"), 0, true)
	require.NoError(t, err)
	require.True(t, ok)
	a := answer{rev: rev1, ok: true}
	b := put("c.a", "two", a.rev)
	require.NoError(t, b.err)
	require.True(t, b.ok)
	assert.Greater(t, b.rev, a.rev)
	stale := put("c.a", "stale", a.rev)
	assert.NoError(t, stale.err, "a stale revision is a conflict, not an error")
	assert.False(t, stale.ok)
	val, rev, err := r.Get(ctx, "c.a")
	require.NoError(t, err)
	assert.Equal(t, "two", string(val))
	assert.Equal(t, b.rev, rev)

	r.Close()
	afterClose := put("c.a", "three", b.rev)
	assert.ErrorIs(t, afterClose.err, errPublisherClosed, "a closed store answers at once")

	r2, err := OpenRecords(ctx, js, 5*time.Second)
	require.NoError(t, err)
	defer r2.Close()
	r = r2
	nc.Close()
	closed := put("c.a", "three", b.rev)
	assert.Error(t, closed.err, "a closed connection answers with an error")
	assert.False(t, closed.ok)
}

func TestRecordsCompareAndSetReplicated(t *testing.T) {
	// Replicated streams may report a revision conflict with another
	// error code than R1 streams: it is a conflict all the same.
	c := natstest.StartCluster(t, 3)
	_, js := c.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, provision.Setup(ctx, js, provision.Topology{Replicas: 3}))
	r, err := OpenRecords(ctx, js, 5*time.Second)
	require.NoError(t, err)
	defer r.Close()
	checkCompareAndSet(t, r)
}
