package failstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// MaxLookupHits bounds the index entries a Lookup reads per form of the
// value: a value that more open failures hold (a company's name in an
// outage) is answered for these, with More set.
const MaxLookupHits = 1000

// verifyInFlight bounds the verifications a Lookup has in flight.
const verifyInFlight = 16

// Found is what a Lookup found.
type Found struct {
	// Failures are the open failures found, newest first, at most the
	// limit asked for.
	Failures []Summary
	// Hits counts the index entries read; Stale those whose command's
	// open failure does not hold the value (or that q does not select).
	Hits, Stale int
	// More tells that more failures hold the value than Failures lists
	// (more than the limit, or more than MaxLookupHits index entries).
	More bool
	// Took is how long the lookup took.
	Took time.Duration
}

// Lookup finds the open failures q selects whose command holds value,
// ignoring case, surrounding and repeated white space (a mobile also
// ignoring spaces, dashes and dots) as its name, email, mobile,
// companyName or one of its indexed metadata values, or whose commandId
// is value: through the exact-value index, a direct get per hit, each hit
// verified against the store (a stale index entry is read, never
// answered). It returns at most limit failures (0: all it found), newest
// first; ErrNoIndex when the index is missing or not built yet, and
// ErrNoStore when the store is. Conflicts' entries are not indexed.
func Lookup(ctx context.Context, js jetstream.JetStream, value string, q Select, limit int) (*Found, error) {
	start := time.Now()
	forms := queryForms(value)
	if len(forms) == 0 {
		return nil, errors.New("look up open failures: no value")
	}
	idx, err := indexStream(ctx, js)
	if err != nil {
		return nil, err
	}
	if idx == nil || !IndexBuilt(idx.CachedInfo()) {
		return nil, ErrNoIndex
	}
	s, err := js.Stream(ctx, Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, ErrNoStore
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", Stream, err)
	}
	last := s.CachedInfo().State.LastSeq
	found := &Found{}
	var keys []string
	for _, f := range forms {
		prefix := IndexSubjectPrefix + indexDigest(f) + "."
		read := 0
		for seq := uint64(1); ; {
			m, err := nextDirect(ctx, js, IndexStream, seq, prefix+">")
			if err != nil {
				return nil, err
			}
			if m == nil {
				break
			}
			found.Hits++
			if key := strings.TrimPrefix(m.subject, prefix); !slices.Contains(keys, key) {
				keys = append(keys, key)
			}
			if read++; read >= MaxLookupHits {
				found.More = true
				break
			}
			seq = m.seq + 1
		}
	}
	// A commandId is found by the store's own key.
	byID := ""
	if id := strings.TrimSpace(value); id != "" {
		byID = Key(id)
		if !slices.Contains(keys, byID) {
			keys = append(keys, byID)
		}
	}
	got := make([]*Summary, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(verifyInFlight)
	for i, key := range keys {
		g.Go(func() error {
			sum, err := verify(gctx, js, key, last, forms, strings.TrimSpace(value), q)
			got[i] = sum
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i, sum := range got {
		switch {
		case sum != nil:
			found.Failures = append(found.Failures, *sum)
		case keys[i] != byID:
			found.Stale++
		}
	}
	sortNewestFirst(found.Failures)
	if limit > 0 && len(found.Failures) > limit {
		found.Failures = found.Failures[:limit]
		found.More = true
	}
	found.Took = time.Since(start)
	return found, nil
}

// verify reads the open failure of the command under key (its newest
// own entry stored up to last) and returns its summary when q selects it
// and its command holds one of forms, or its commandId is id; else nil.
func verify(ctx context.Context, js jetstream.JetStream, key string, last uint64, forms []string, id string, q Select) (*Summary, error) {
	var newest *directMsg
	filter := SubjectPrefix + "*.*." + key
	for seq := uint64(1); seq <= last; {
		m, err := nextDirect(ctx, js, Stream, seq, filter)
		if err != nil {
			return nil, err
		}
		if m == nil || m.seq > last {
			break
		}
		newest = m
		seq = m.seq + 1
	}
	if newest == nil {
		return nil, nil
	}
	sum := summarize(newest.seq, newest.subject, newest.header)
	sum.Size = len(newest.data)
	if !q.selects(&sum) {
		return nil, nil
	}
	if !strings.EqualFold(sum.CommandID, id) && !holds(newest.data, forms) {
		return nil, nil
	}
	return &sum, nil
}

// IndexStats counts what IndexAll did.
type IndexStats struct {
	// Failures counts the open failures indexed, Writes the index
	// entries written.
	Failures, Writes int
	Took             time.Duration
}

// IndexAll builds the exact-value index from the store: it purges the
// index, reads every open failure stored up to the store's last sequence
// (whole, with one ordered consumer: memory of a batch), writes its index
// entries, and records in the index stream's metadata that the index is
// built. It may run while the service writes: a failure stored after it
// began is indexed by its own writer, and an entry it writes for a
// failure replaced meanwhile is stale, which a lookup verifies away.
// Progress, if set, is told the entries read out of those held every so
// often. It is idempotent.
func IndexAll(ctx context.Context, js jetstream.JetStream, progress func(done, total uint64)) (IndexStats, error) {
	start := time.Now()
	var st IndexStats
	idx, err := indexStream(ctx, js)
	if err != nil {
		return st, err
	}
	if idx == nil {
		return st, fmt.Errorf("index open failures: the stream %s does not exist: run 'consumer setup'", IndexStream)
	}
	if err := idx.Purge(ctx); err != nil {
		return st, fmt.Errorf("purge stream %s: %w", IndexStream, err)
	}
	s, err := js.Stream(ctx, Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return st, ErrNoStore
	}
	if err != nil {
		return st, fmt.Errorf("look up stream %s: %w", Stream, err)
	}
	state := s.CachedInfo().State
	var (
		pending  []jetstream.PubAckFuture
		firstErr error
		lastTold time.Time
	)
	flush := func() {
		for _, ack := range pending {
			select {
			case <-ack.Ok():
			case err := <-ack.Err():
				if firstErr == nil {
					firstErr = fmt.Errorf("index open failures: %w", err)
				}
			case <-ctx.Done():
				if firstErr == nil {
					firstErr = ctx.Err()
				}
			}
		}
		pending = pending[:0]
	}
	if state.Msgs > 0 {
		err = ReadUpTo(ctx, s, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{Subjects},
			DeliverPolicy:  jetstream.DeliverAllPolicy,
		}, state.LastSeq, func(msg jetstream.Msg, seq uint64) {
			if firstErr != nil {
				return
			}
			if strings.Count(msg.Subject(), ".") == commandSubjectDots { // conflicts are not indexed
				st.Failures++
				key := subjectKey(msg.Subject())
				forms := entryForms(msg.Data())
				msgs := make([]*nats.Msg, 0, len(forms)+1)
				for _, f := range forms {
					msgs = append(msgs, indexMsg(indexSubject(f, key), seq, nil))
				}
				msgs = append(msgs, indexMsg(manifestSubject(key), seq, manifestBody(forms)))
				for _, m := range msgs {
					ack, err := js.PublishMsgAsync(m, jetstream.WithExpectStream(IndexStream))
					if err != nil {
						firstErr = fmt.Errorf("index open failures: %w", err)
						return
					}
					pending = append(pending, ack)
					st.Writes++
				}
				if len(pending) >= 2000 {
					flush()
				}
			}
			if progress != nil && time.Since(lastTold) > 200*time.Millisecond {
				progress(seq, state.LastSeq)
				lastTold = time.Now()
			}
		})
		flush()
		if err == nil {
			err = firstErr
		}
		if err != nil {
			return st, err
		}
	}
	if progress != nil {
		progress(state.LastSeq, state.LastSeq)
	}
	if err := MarkIndexBuilt(ctx, js); err != nil {
		return st, err
	}
	st.Took = time.Since(start)
	return st, nil
}

// MarkIndexBuilt records in the index stream's metadata that the index
// holds every open failure: after IndexAll, or when the store is empty.
func MarkIndexBuilt(ctx context.Context, js jetstream.JetStream) error {
	idx, err := js.Stream(ctx, IndexStream)
	if err != nil {
		return fmt.Errorf("look up stream %s: %w", IndexStream, err)
	}
	cfg := idx.CachedInfo().Config
	if cfg.Metadata == nil {
		cfg.Metadata = map[string]string{}
	}
	cfg.Metadata[MetadataIndexBuilt] = time.Now().UTC().Format(time.RFC3339)
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("update stream %s: %w", IndexStream, err)
	}
	return nil
}
