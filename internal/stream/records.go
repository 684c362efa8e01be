package stream

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Records keeps idempotency records in the JetStream key-value bucket
// RecordBucket, with compare-and-set writes on the key's revision. It
// satisfies handlers.Store and is safe for concurrent use.
type Records struct {
	kv jetstream.KeyValue
}

// OpenRecords binds to the record bucket, which Setup creates.
func OpenRecords(ctx context.Context, js jetstream.JetStream) (*Records, error) {
	kv, err := js.KeyValue(ctx, RecordBucket)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", RecordBucket, err)
	}
	return &Records{kv: kv}, nil
}

// Get returns the value under key and its revision, or revision zero.
func (r *Records) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	e, err := r.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	return e.Value(), e.Revision(), nil
}

// Put writes value under key if its revision is still revision (zero: if
// the key does not exist); ok is false when it changed meanwhile.
func (r *Records) Put(ctx context.Context, key string, value []byte, revision uint64) (uint64, bool, error) {
	var (
		rev uint64
		err error
	)
	if revision == 0 {
		rev, err = r.kv.Create(ctx, key, value)
	} else {
		rev, err = r.kv.Update(ctx, key, value, revision)
	}
	// A conflict: the key exists (Create), or its revision moved on
	// (Update; replicated streams may report that with a code of their
	// own, which only ErrKeyRevisionMismatch matches).
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return rev, true, nil
}
