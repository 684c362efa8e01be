package provision

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/internal/failstore"
)

// markIndexed marks the exact-value index of the open failures built
// when there is nothing to index (the store is empty): a new deployment
// needs no migration. An index created beside a store that holds
// failures (an upgrade) is left unmarked, for IndexFailures ('consumer
// setup') to build; lookups answer ErrNoIndex until then.
func markIndexed(ctx context.Context, js jetstream.JetStream) error {
	idx, err := js.Stream(ctx, failstore.IndexStream)
	if err != nil {
		return fmt.Errorf("look up stream %s: %w", failstore.IndexStream, err)
	}
	if failstore.IndexBuilt(idx.CachedInfo()) {
		return nil
	}
	fs, err := js.Stream(ctx, failstore.Stream)
	if err != nil {
		return fmt.Errorf("look up stream %s: %w", failstore.Stream, err)
	}
	if fs.CachedInfo().State.Msgs > 0 {
		return nil
	}
	return failstore.MarkIndexBuilt(ctx, js)
}

// IndexFailures is the migration of a store of open failures older than
// its exact-value index: when the index is not built, it indexes every
// open failure (failstore.IndexAll, telling progress the store entries
// read out of its last sequence) and marks the index built. It reports
// whether it ran; an index built already is left alone. It is idempotent,
// and may run while the service runs.
func IndexFailures(ctx context.Context, js jetstream.JetStream, progress func(done, total uint64)) (failstore.IndexStats, bool, error) {
	idx, err := js.Stream(ctx, failstore.IndexStream)
	if err != nil {
		return failstore.IndexStats{}, false, fmt.Errorf("look up stream %s: %w", failstore.IndexStream, err)
	}
	if failstore.IndexBuilt(idx.CachedInfo()) {
		return failstore.IndexStats{}, false, nil
	}
	st, err := failstore.IndexAll(ctx, js, progress)
	if err != nil {
		return st, true, fmt.Errorf("index the open failures: %w", err)
	}
	return st, true, nil
}
