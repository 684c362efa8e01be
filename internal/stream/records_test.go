package stream

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/provision"
)

// TestRecordsCreate holds a create (revision zero), published without
// kv.Create's options, to kv.Create's answers: it lands on a key without
// a value and on a key deleted since (left to kv.Create, which sees the
// marker), and is a conflict (ok false) on a key that has a value; a key
// the key-value API refuses is refused as it refuses it.
func TestRecordsCreate(t *testing.T) {
	t.Parallel()
	_, _, js := setup(t, provision.Topology{})
	ctx := context.Background()
	r := openRecords(t, js)
	kv, err := js.KeyValue(ctx, provision.RecordBucket)
	require.NoError(t, err)

	rev, ok, err := r.Put(ctx, "c.new", []byte("1"), 0, false)
	require.NoError(t, err)
	require.True(t, ok, "a create on a new key lands")
	e, err := kv.Get(ctx, "c.new")
	require.NoError(t, err)
	assert.Equal(t, rev, e.Revision(), "the revision returned is the key's")
	assert.Equal(t, "1", string(e.Value()))

	_, ok, err = r.Put(ctx, "c.new", []byte("2"), 0, false)
	require.NoError(t, err)
	assert.False(t, ok, "a create on a key with a value is a conflict")

	require.NoError(t, kv.Delete(ctx, "c.new"))
	rev2, ok, err := r.Put(ctx, "c.new", []byte("3"), 0, false)
	require.NoError(t, err)
	require.True(t, ok, "a create on a deleted key lands")
	assert.Greater(t, rev2, rev)
	e, err = kv.Get(ctx, "c.new")
	require.NoError(t, err)
	assert.Equal(t, "3", string(e.Value()))

	for _, key := range []string{"c..x", ".c", "c.", "c x", "c.*"} {
		_, _, err := r.Put(ctx, key, []byte("4"), 0, false)
		assert.Error(t, err, "key %q is refused, as the key-value API refuses it", key)
	}
}
