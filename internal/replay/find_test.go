package replay

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/failstore"
)

// An index that cannot be read (the server refuses the user, a stream
// being restored) leaves the search to the scan, which says why; a
// cancelled search stops.
func TestFindScansWhenTheIndexCannotBeRead(t *testing.T) {
	l := newEventLog(t, true)
	refused := errors.New("nats: permissions violation for publish to \"$JS.API.STREAM.INFO.CONTACT_FAILURE_INDEX\"")
	lookup = func(context.Context, jetstream.JetStream, string, failstore.Select, int) (*failstore.Found, error) {
		return nil, refused
	}
	t.Cleanup(func() { lookup = failstore.Lookup })

	found, err := Find(context.Background(), l.js, Filter{Limit: 20}, "jane@example.com", false, nil)
	require.NoError(t, err, "the scan answers")
	assert.Equal(t, ByScan, found.By)
	assert.Contains(t, found.Note(), "the exact-value index could not be read: "+refused.Error())

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Find(ctx, l.js, Filter{Limit: 20}, "jane@example.com", false, nil)
	assert.Error(t, err, "a cancelled search does not go on to the scan")
}
