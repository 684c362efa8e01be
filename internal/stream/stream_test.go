package stream

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/natstest"
)

func setup(t *testing.T, topo Topology) (*natstest.Server, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	srv := natstest.Start(t, nil)
	nc, js := srv.Connect(t)
	require.NoError(t, Setup(context.Background(), js, topo))
	return srv, nc, js
}

func TestSetupIsIdempotent(t *testing.T) {
	_, _, js := setup(t, Topology{})
	ctx := context.Background()
	snapshot := func() (jetstream.StreamConfig, jetstream.StreamConfig, jetstream.ConsumerConfig) {
		cs, err := js.Stream(ctx, CommandStream)
		require.NoError(t, err)
		es, err := js.Stream(ctx, EventStream)
		require.NoError(t, err)
		ci, err := js.Consumer(ctx, CommandStream, Durable)
		require.NoError(t, err)
		return cs.CachedInfo().Config, es.CachedInfo().Config, ci.CachedInfo().Config
	}
	c1, e1, d1 := snapshot()
	require.NoError(t, Setup(ctx, js, Topology{}), "a second setup succeeds")
	c2, e2, d2 := snapshot()
	assert.Equal(t, c1, c2, "the command stream is unchanged")
	assert.Equal(t, e1, e2, "the event stream is unchanged")
	assert.Equal(t, d1, d2, "the consumer is unchanged")

	assert.Equal(t, []string{events.SubjectCreate}, c1.Subjects)
	assert.Equal(t, jetstream.FileStorage, c1.Storage)
	assert.Equal(t, jetstream.WorkQueuePolicy, c1.Retention, "a command stays until settled, and goes once it is")
	assert.Equal(t, 2*time.Minute, c1.Duplicates)
	assert.Equal(t, []string{events.SubjectCreated, events.SubjectFailed}, e1.Subjects)
	assert.Equal(t, jetstream.AckExplicitPolicy, d1.AckPolicy)
	_, err := js.KeyValue(ctx, RecordBucket)
	assert.NoError(t, err, "the record bucket exists")
}

func TestSetupKeepsWhatAnOperatorAdded(t *testing.T) {
	_, _, js := setup(t, Topology{})
	ctx := context.Background()
	s, err := js.Stream(ctx, EventStream)
	require.NoError(t, err)
	cfg := s.CachedInfo().Config
	cfg.Subjects = append(cfg.Subjects, "contact.audit")
	cfg.MaxAge = 90 * 24 * time.Hour
	cfg.MaxBytes = 1 << 30
	_, err = js.UpdateStream(ctx, cfg)
	require.NoError(t, err)

	var notes []string
	require.NoError(t, Setup(ctx, js, Topology{EventMaxAge: 720 * time.Hour, Note: func(s string) { notes = append(notes, s) }}))
	s, err = js.Stream(ctx, EventStream)
	require.NoError(t, err)
	assert.Contains(t, s.CachedInfo().Config.Subjects, "contact.audit", "extra subjects are left")
	assert.Equal(t, int64(1<<30), s.CachedInfo().Config.MaxBytes, "limits of the operator's are left")
	assert.Equal(t, 720*time.Hour, s.CachedInfo().Config.MaxAge, "the age limit is EVENT_MAX_AGE's")
	assert.Equal(t, []string{"CONTACT_EVENTS: keeps events for 720h0m0s (was 2160h0m0s): EVENT_MAX_AGE"}, notes)
}

// A record bucket made by an earlier version (no per-key TTLs, perhaps an
// age limit an operator gave it) is changed in place, and setup says so.
func TestSetupSaysWhatItChangedInTheBucket(t *testing.T) {
	srv := natstest.Start(t, nil)
	_, js := srv.Connect(t)
	ctx := context.Background()
	_, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: RecordBucket, History: 1, Storage: jetstream.FileStorage, TTL: 48 * time.Hour})
	require.NoError(t, err)
	var notes []string
	topo := Topology{RecordTTL: 2160 * time.Hour, Note: func(s string) { notes = append(notes, s) }}
	require.NoError(t, Setup(ctx, js, topo))
	assert.Equal(t, []string{
		"CONTACT_RECORDS: per-key TTLs switched on: a record now expires RECORD_TTL (2160h0m0s) after the write that settled it; records written before keep no TTL",
		"CONTACT_RECORDS: age limit removed (was 48h0m0s): records expire by RECORD_TTL only, never while a create call's outcome is unknown",
	}, notes, "every change to the bucket is said")
	s, err := js.Stream(ctx, "KV_"+RecordBucket)
	require.NoError(t, err)
	assert.True(t, s.CachedInfo().Config.AllowMsgTTL, "per-key TTLs are on")
	assert.Zero(t, s.CachedInfo().Config.MaxAge, "no age limit")

	notes = nil
	require.NoError(t, Setup(ctx, js, topo))
	assert.Empty(t, notes, "a second setup changes nothing, and says nothing")
}

// A command stream made by an earlier version (limits retention) cannot be
// made a work queue in place: setup leaves it, and says so with the steps.
func TestSetupSaysWhatItCannotChange(t *testing.T) {
	srv := natstest.Start(t, nil)
	_, js := srv.Connect(t)
	ctx := context.Background()
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: CommandStream, Subjects: []string{events.SubjectCreate}, Storage: jetstream.FileStorage})
	require.NoError(t, err)
	var notes []string
	require.NoError(t, Setup(ctx, js, Topology{Note: func(s string) { notes = append(notes, s) }}))
	s, err := js.Stream(ctx, CommandStream)
	require.NoError(t, err)
	assert.Equal(t, jetstream.LimitsPolicy, s.CachedInfo().Config.Retention, "left as it was")
	require.Len(t, notes, 1)
	assert.Contains(t, notes[0], "cannot change a live stream's retention to work-queue")
	assert.Contains(t, notes[0], "nats stream rm CONTACT_COMMANDS")
	assert.Less(t, strings.Index(notes[0], "stop every 'consumer run'"), strings.Index(notes[0], "nats stream rm"),
		"the service is stopped before its stream is deleted")
	assert.Contains(t, notes[0], "start the service, and restart the publishers")
}

// Records written with a TTL expire on the server's clock; the key can
// then be created again.
func TestRecordsExpire(t *testing.T) {
	t.Parallel()
	_, _, js := setup(t, Topology{})
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
	_, _, js := setup(t, Topology{})
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
	srv, _, _ := setup(t, Topology{})
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
	require.NoError(t, Setup(ctx, js, Topology{Replicas: 3}))
	r, err := OpenRecords(ctx, js, 5*time.Second)
	require.NoError(t, err)
	defer r.Close()
	checkCompareAndSet(t, r)
}
