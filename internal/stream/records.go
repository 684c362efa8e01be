package stream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Records keeps idempotency records in the JetStream key-value bucket
// RecordBucket, with compare-and-set writes on the key's revision. It
// satisfies handlers.Store and handlers.AsyncStore and is safe for
// concurrent use.
type Records struct {
	kv jetstream.KeyValue

	// The asynchronous writer: its own JetStream context, and the writes
	// waiting for their acknowledgement.
	pub     jetstream.JetStream
	timeout time.Duration
	subject string // the bucket's put subject, without the key
	mu      sync.Mutex
	pending map[*nats.Msg]func(uint64, bool, error)
	closed  chan nats.Status
}

// OpenRecords binds to the record bucket, which Setup creates. Writes
// without waiting (PutAsync) time out after writeTimeout. Close releases
// what it holds on the connection.
func OpenRecords(ctx context.Context, js jetstream.JetStream, writeTimeout time.Duration) (*Records, error) {
	kv, err := js.KeyValue(ctx, RecordBucket)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", RecordBucket, err)
	}
	r := &Records{kv: kv, timeout: writeTimeout, subject: "$KV." + RecordBucket + ".", pending: map[*nats.Msg]func(uint64, bool, error){}}
	r.pub, err = jetstream.New(js.Conn(),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, ack *jetstream.PubAck) {
			if done := r.take(m); done != nil {
				done(ack.Sequence, true, nil)
			}
		}),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			if done := r.take(m); done != nil {
				r.answer(done, err)
			}
		}),
		jetstream.WithPublishAsyncTimeout(writeTimeout))
	if err != nil {
		return nil, fmt.Errorf("record writer: %w", err)
	}
	// A closed connection answers no write: fail those waiting at once.
	r.closed = js.Conn().StatusChanged(nats.CLOSED)
	go func() {
		if _, ok := <-r.closed; ok {
			r.abandon(nats.ErrConnectionClosed)
		}
	}()
	return r, nil
}

// Close fails the writes still waiting and releases the connection's
// listener and subscription.
func (r *Records) Close() {
	r.pub.Conn().RemoveStatusListener(r.closed)
	r.pub.CleanupPublisher()
	r.abandon(errors.New("record store closed"))
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
	if isConflict(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return rev, true, nil
}

// PutAsync is Put without waiting: done is called once with what Put would
// return, on a goroutine of the NATS client's, and must not block. Only an
// existing key is written this way (revision above zero): a key deleted
// since would need the read Create does.
func (r *Records) PutAsync(key string, value []byte, revision uint64, done func(newRevision uint64, ok bool, err error)) {
	if revision == 0 {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
			defer cancel()
			done(r.Put(ctx, key, value, 0))
		}()
		return
	}
	m := nats.NewMsg(r.subject + key)
	m.Data = value
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(revision, 10))
	// Register before sending: the acknowledgement may come back before
	// the publish call returns.
	r.mu.Lock()
	r.pending[m] = done
	r.mu.Unlock()
	if _, err := r.pub.PublishMsgAsync(m); err != nil {
		if done := r.take(m); done != nil {
			r.answer(done, err)
		}
	}
}

// answer reports a failed write: a conflict as ok false, anything else as
// an error.
func (r *Records) answer(done func(uint64, bool, error), err error) {
	if isConflict(err) {
		done(0, false, nil)
		return
	}
	done(0, false, err)
}

func (r *Records) take(m *nats.Msg) func(uint64, bool, error) {
	r.mu.Lock()
	done := r.pending[m]
	delete(r.pending, m)
	r.mu.Unlock()
	return done
}

func (r *Records) abandon(err error) {
	r.mu.Lock()
	waiting := make([]func(uint64, bool, error), 0, len(r.pending))
	for m, done := range r.pending {
		waiting = append(waiting, done)
		delete(r.pending, m)
	}
	r.mu.Unlock()
	for _, done := range waiting {
		done(0, false, err)
	}
}

// isConflict reports a compare-and-set conflict: the key exists (a
// create), or its revision moved on (an update; replicated streams may
// report that with a code of their own, which only ErrKeyRevisionMismatch
// matches, and an asynchronous write gets the server's error as it is).
func isConflict(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
