package record

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the JetStream key-value bucket of the records, one per
// commandId under Key(commandId). The service sets it up ('consumer
// setup') and alone writes it.
const Bucket = "CONTACT_RECORDS"

// Reader reads records from Bucket and never writes: the one code that
// reads the bucket, for the service's own store (which adds the writes)
// and for every reader outside it (the client, the console). It is safe
// for concurrent use.
type Reader struct {
	kv jetstream.KeyValue
}

// OpenReader binds to Bucket through js. Its error is the binding's as
// nats.go returns it: jetstream.ErrBucketNotFound (errors.Is) when the
// service never set the bucket up on this NATS, account or domain.
func OpenReader(ctx context.Context, js jetstream.JetStream) (*Reader, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if err != nil {
		return nil, err
	}
	return NewReader(kv), nil
}

// NewReader returns a Reader of kv, the bucket bound already (the
// service's store, which binds it for its writes too).
func NewReader(kv jetstream.KeyValue) *Reader { return &Reader{kv: kv} }

// Get returns the value stored under key (see Key) and its revision, or a
// zero revision and no error when there is none. Decode reads the value;
// ResentOutcome, NewestOutcome and NewestEvent answer from it.
func (r *Reader) Get(ctx context.Context, key string) (value []byte, revision uint64, err error) {
	e, err := r.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	return e.Value(), e.Revision(), nil
}
