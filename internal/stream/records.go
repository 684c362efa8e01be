package stream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/internal/provision"
	"github.com/contactrelay/contactrelay/record"
)

// Records keeps idempotency records in the JetStream key-value bucket
// provision.RecordBucket, with compare-and-set writes on the key's
// revision: the one code that writes the bucket. It reads through
// record.Reader, the one code that reads it. It satisfies handlers.Store
// and handlers.AsyncStore and is safe for concurrent use.
//
// The writing store stays internal: the compare-and-set protocol of a
// decision (claim, bookkeeping, outcome; TTL only on a settling write) is
// the service's alone, and no publisher outside should be offered a way
// to write a record.
type Records struct {
	*record.Reader // Get
	// TTL is how long a record lives after its last write that may
	// expire; zero: for ever. A write that may not (a record whose create
	// call's outcome is unknown) carries no TTL, and the bucket has no age
	// limit: it never expires. Set it before the first write.
	TTL time.Duration

	js      jetstream.JetStream
	kv      jetstream.KeyValue
	pub     *publisher[func(uint64, bool, error)] // PutAsync's writes
	subject string                                // the bucket's put subject, without the key
	ttlText atomic.Pointer[ttlText]               // the TTL header of the last TTL written
}

// ttlText is a TTL and its header value.
type ttlText struct {
	ttl  time.Duration
	text string
}

// ttlHeader returns the Nats-TTL header value of ttl, written once, not
// per write.
func (r *Records) ttlHeader(ttl time.Duration) string {
	if t := r.ttlText.Load(); t != nil && t.ttl == ttl {
		return t.text
	}
	t := &ttlText{ttl: ttl, text: ttl.String()}
	r.ttlText.Store(t)
	return t.text
}

// OpenRecords binds to the record bucket, which provision.Setup creates.
// Writes without waiting (PutAsync) time out after writeTimeout. Close
// releases what it holds on the connection.
func OpenRecords(ctx context.Context, js jetstream.JetStream, writeTimeout time.Duration) (*Records, error) {
	kv, err := js.KeyValue(ctx, provision.RecordBucket)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", provision.RecordBucket, err)
	}
	r := &Records{Reader: record.NewReader(kv), js: js, kv: kv, subject: putPrefix(js) + "$KV." + provision.RecordBucket + "."}
	r.pub, err = newPublisher(js.Conn(), writeTimeout, 4096, func(done func(uint64, bool, error), ack *jetstream.PubAck, err error) {
		switch {
		case err == nil:
			done(ack.Sequence, true, nil)
		case isConflict(err):
			done(0, false, nil)
		default:
			done(0, false, err)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("record writer: %w", err)
	}
	return r, nil
}

// putPrefix returns what the key-value API puts before a key's subject
// when it writes: nothing on the default JetStream API, the API prefix of
// a domain or of an imported API otherwise (as nats.go's KeyValue.Put).
func putPrefix(js jetstream.JetStream) string {
	o := js.Options()
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "" && strings.TrimSuffix(o.APIPrefix, ".")+"." != jetstream.DefaultAPIPrefix:
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	}
	return ""
}

// Close fails the writes still waiting and releases the connection's
// listener and subscription.
func (r *Records) Close() { r.pub.close(errors.New("record store closed")) }

// Put writes value under key if its revision is still revision (zero: if
// the key does not exist); ok is false when it changed meanwhile. The
// record expires TTL after this write when expires is set; otherwise the
// write carries no TTL and the record stays until a later write gives it
// one.
func (r *Records) Put(ctx context.Context, key string, value []byte, revision uint64, expires bool) (uint64, bool, error) {
	var (
		rev uint64
		err error
	)
	ttl := r.ttl(expires)
	switch {
	case revision == 0 && ttl > 0:
		rev, err = r.kv.Create(ctx, key, value, jetstream.KeyTTL(ttl))
	case revision == 0:
		rev, err = r.create(ctx, key, value)
	case ttl > 0:
		// The key-value API updates without a TTL: publish as it does.
		var ack *jetstream.PubAck
		m := nats.NewMsg(r.subject + key)
		m.Data = value
		ack, err = r.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(revision), jetstream.WithMsgTTL(ttl))
		if err == nil {
			rev = ack.Sequence
		}
	default:
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

// create writes value under key if the key has no value: kv.Create's
// first publish, made here as PutAsync publishes (no option closure,
// slice or struct per write). A conflict (the key exists, or holds a
// delete marker) is left to kv.Create, which tells the two apart, as is a
// key the key-value API would refuse.
func (r *Records) create(ctx context.Context, key string, value []byte) (uint64, error) {
	if !plainKey(key) {
		return r.kv.Create(ctx, key, value)
	}
	m := nats.NewMsg(r.subject + key)
	m.Data = value
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
	ack, err := r.js.PublishMsg(ctx, m)
	switch {
	case err == nil:
		return ack.Sequence, nil
	case isConflict(err):
		return r.kv.Create(ctx, key, value)
	}
	return 0, err
}

// plainKey reports whether key is one the key-value API takes as it is:
// letters, digits and -/_=. only, no dot first, last or after another
// (as record.Key's are; nats.go's keyValid without its regular
// expression).
func plainKey(key string) bool {
	if key == "" || key[0] == '.' || key[len(key)-1] == '.' {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '/', c == '_', c == '=':
		case c == '.' && key[i-1] != '.':
		default:
			return false
		}
	}
	return true
}

// ttl returns the TTL a write carries: TTL when the record may expire,
// none (zero) when it may not or when records live for ever. A message
// without a TTL in a bucket without an age limit is kept until replaced.
func (r *Records) ttl(expires bool) time.Duration {
	if !expires {
		return 0
	}
	return r.TTL
}

// errPutAsyncCreate refuses a create without waiting.
var errPutAsyncCreate = errors.New("PutAsync writes over an existing revision; create keys with Put")

// PutAsync is Put without waiting: done is called once with what Put would
// return, on a goroutine of the NATS client's, and must not block. Only an
// existing key is written this way (revision above zero: a create needs the
// read Put does for a key deleted since); revision zero is answered with
// an error at once.
func (r *Records) PutAsync(key string, value []byte, revision uint64, expires bool, done func(newRevision uint64, ok bool, err error)) {
	if revision == 0 {
		done(0, false, errPutAsyncCreate)
		return
	}
	m := nats.NewMsg(r.subject + key)
	m.Data = value
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(revision, 10))
	if ttl := r.ttl(expires); ttl > 0 {
		m.Header.Set(jetstream.MsgTTLHeader, r.ttlHeader(ttl))
	}
	r.pub.publish(m, done)
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
