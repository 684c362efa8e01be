package provision

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/natstest"
)

// setup starts a server and sets up the service's resources on it.
func setup(t *testing.T, topo Topology) jetstream.JetStream {
	t.Helper()
	srv := natstest.Start(t, nil)
	_, js := srv.Connect(t)
	require.NoError(t, Setup(context.Background(), js, topo))
	return js
}

func TestSetupIsIdempotent(t *testing.T) {
	js := setup(t, Topology{})
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

	assert.Equal(t, []string{contact.SubjectCreate}, c1.Subjects)
	assert.Equal(t, jetstream.FileStorage, c1.Storage)
	assert.Equal(t, jetstream.WorkQueuePolicy, c1.Retention, "a command stays until settled, and goes once it is")
	assert.Equal(t, 2*time.Minute, c1.Duplicates)
	assert.Equal(t, []string{contact.SubjectCreated, contact.SubjectFailed}, e1.Subjects)
	assert.Equal(t, jetstream.AckExplicitPolicy, d1.AckPolicy)
	_, err := js.KeyValue(ctx, RecordBucket)
	assert.NoError(t, err, "the record bucket exists")
}

func TestSetupKeepsWhatAnOperatorAdded(t *testing.T) {
	js := setup(t, Topology{})
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

// A command stream made by an earlier version (limits retention) cannot be
// made a work queue in place: setup leaves it, and says so with the steps.
func TestSetupSaysWhatItCannotChange(t *testing.T) {
	srv := natstest.Start(t, nil)
	_, js := srv.Connect(t)
	ctx := context.Background()
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: CommandStream, Subjects: []string{contact.SubjectCreate}, Storage: jetstream.FileStorage})
	require.NoError(t, err)
	var notes []string
	require.NoError(t, Setup(ctx, js, Topology{Note: func(s string) { notes = append(notes, s) }}))
	s, err := js.Stream(ctx, CommandStream)
	require.NoError(t, err)
	assert.Equal(t, jetstream.LimitsPolicy, s.CachedInfo().Config.Retention, "left as it was")
	require.Len(t, notes, 1)
	assert.Contains(t, notes[0], "cannot change a live stream's retention to work-queue")
	assert.Contains(t, notes[0], "nats stream rm CONTACT_COMMANDS")
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

// Setup makes the console's sign-out bucket, with per-key TTLs, and
// leaves it as it is the second time.
func TestSetupMakesTheConsoleSessionBucket(t *testing.T) {
	js := setup(t, Topology{})
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, ConsoleSessionBucket)
	require.NoError(t, err, "the bucket exists")
	st, err := kv.Status(ctx)
	require.NoError(t, err)
	info := st.(*jetstream.KeyValueBucketStatus).StreamInfo()
	assert.True(t, info.Config.AllowMsgTTL, "a sign-out is kept for the rest of its session's life")
	_, err = kv.Create(ctx, "nonce", []byte("x"), jetstream.KeyTTL(time.Hour))
	require.NoError(t, err)
	require.NoError(t, Setup(ctx, js, Topology{}))
	_, err = kv.Get(ctx, "nonce")
	assert.NoError(t, err, "a second setup keeps the bucket and its keys")
}
