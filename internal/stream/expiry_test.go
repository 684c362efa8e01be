package stream

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/clients/provider"
	"github.com/contactrelay/contactrelay/internal/handlers"
	"github.com/contactrelay/contactrelay/internal/provision"
	"github.com/contactrelay/contactrelay/record"
)

// TestUnsettledRecordsDoNotExpire writes records that must not expire
// (their create call's outcome unknown) before records that may, with a
// TTL of a second: once the later ones have expired, the earlier ones are
// still there, whichever way they were written; a write that settles a
// record gives it the TTL again.
func TestUnsettledRecordsDoNotExpire(t *testing.T) {
	t.Parallel()
	_, _, js := setup(t, provision.Topology{RecordTTL: time.Second})
	ctx := context.Background()
	r := openRecords(t, js)
	r.TTL = time.Second
	putAsync := func(key string, rev uint64, expires bool) {
		t.Helper()
		done := make(chan error, 1)
		r.PutAsync(key, []byte("async"), rev, expires, func(_ uint64, ok bool, err error) {
			if err == nil && !ok {
				err = assert.AnError
			}
			done <- err
		})
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("no answer")
		}
	}
	put := func(key string, rev uint64, expires bool) uint64 {
		t.Helper()
		rev, ok, err := r.Put(ctx, key, []byte("sync"), rev, expires)
		require.NoError(t, err)
		require.True(t, ok)
		return rev
	}

	put("c.created-unsettled", 0, false)
	put("c.updated-unsettled", put("c.updated-unsettled", 0, true), false)
	putAsync("c.async-unsettled", put("c.async-unsettled", 0, true), false)
	putAsync("c.settled-later", put("c.settled-later", 0, false), true)
	put("c.settled", 0, true)

	gone := func(key string) func() bool {
		return func() bool {
			_, rev, err := r.Get(ctx, key)
			return err == nil && rev == 0
		}
	}
	require.Eventually(t, gone("c.settled"), 10*time.Second, 50*time.Millisecond, "a settled record expires")
	require.Eventually(t, gone("c.settled-later"), 10*time.Second, 50*time.Millisecond, "so does one a later write settled")
	for _, key := range []string{"c.created-unsettled", "c.updated-unsettled", "c.async-unsettled"} {
		_, rev, err := r.Get(ctx, key)
		require.NoError(t, err)
		assert.NotZero(t, rev, "%s, unsettled, outlives the TTL of records written after it", key)
	}
}

// blockingProvider creates contacts, holding the create call of one
// command until release is closed.
type blockingProvider struct {
	slow    string
	calling chan struct{}
	release chan struct{}
}

func (p *blockingProvider) Validate(contact.Command) []contact.FieldError { return nil }

func (p *blockingProvider) Create(_ context.Context, cmd contact.Command) (provider.Contact, error) {
	if cmd.CommandID == p.slow {
		close(p.calling)
		<-p.release
	}
	return provider.Contact{ID: "ct-" + cmd.CommandID}, nil
}

func (p *blockingProvider) Lookup(context.Context, contact.Command) (provider.Contact, bool, error) {
	return provider.Contact{}, false, nil
}

// TestARecordWithACallInFlightOutlivesItsTTL runs the handler through the
// runner with records that live a second: the record of a command whose
// create call is under way outlives the record of a command created after
// it, and takes its TTL once its outcome is recorded.
func TestARecordWithACallInFlightOutlivesItsTTL(t *testing.T) {
	t.Parallel()
	_, _, js := setup(t, provision.Topology{RecordTTL: time.Second})
	ctx := context.Background()
	records := openRecords(t, js)
	records.TTL = time.Second
	p := &blockingProvider{slow: "c-slow", calling: make(chan struct{}), release: make(chan struct{})}
	h, err := handlers.New(handlers.Config{Providers: map[string]handlers.Provider{"fake": p}, DefaultProvider: "fake",
		Store: records, CallTimeout: time.Minute})
	require.NoError(t, err)
	startRunner(t, js, h, RunnerConfig{Concurrency: 4, Records: records})
	release := sync.OnceFunc(func() { close(p.release) })
	t.Cleanup(release) // before the runner stops, should the test fail

	body := func(id string) string {
		return `{"commandId":"` + id + `","name":"Jane","email":"jane@example.com","mobile":"9876543210","tagId":"t"}`
	}
	gone := func(id string) func() bool {
		return func() bool {
			_, rev, err := records.Get(ctx, record.Key(id))
			return err == nil && rev == 0
		}
	}
	publish(t, js, body("c-slow"), nil)
	<-p.calling // its claim is recorded
	publish(t, js, body("c-fast"), nil)
	require.Eventually(t, func() bool { return len(eventsIn(t, js)) == 1 }, 10*time.Second, 20*time.Millisecond, "c-fast is created")
	require.Eventually(t, gone("c-fast"), 10*time.Second, 50*time.Millisecond, "c-fast's record expires")
	val, rev, err := records.Get(ctx, record.Key("c-slow"))
	require.NoError(t, err)
	require.NotZero(t, rev, "the record of a create call in flight outlives the TTL")
	rec, err := record.Decode(val)
	require.NoError(t, err)
	assert.True(t, rec.InFlight, "claimed")

	release()
	require.Eventually(t, func() bool { return len(eventsIn(t, js)) == 2 }, 10*time.Second, 20*time.Millisecond, "c-slow is created")
	require.Eventually(t, gone("c-slow"), 10*time.Second, 50*time.Millisecond, "and its record, settled, expires")
}
