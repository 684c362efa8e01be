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
// is value: through the exact-value index (the subjects of the value's
// digest, from the server's subject index, then two direct gets per hit),
// each hit verified against the store (a stale index entry is read,
// never answered). It returns at most limit failures (0: all it found), newest
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
	type hit struct{ key, entry string }
	var hits []hit
	seen := map[string]bool{}
	for _, f := range forms {
		// The subjects a digest has, from the server's subject index (a
		// literal prefix): no message read, and no read past the last.
		prefix := IndexSubjectPrefix + indexDigest(f) + "."
		info, err := idx.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
		if err != nil {
			return nil, fmt.Errorf("look up stream %s: %w", IndexStream, err)
		}
		keys := make([]string, 0, len(info.State.Subjects))
		for subject := range info.State.Subjects {
			keys = append(keys, strings.TrimPrefix(subject, prefix))
		}
		slices.Sort(keys)
		if len(keys) > MaxLookupHits {
			keys, found.More = keys[:MaxLookupHits], true
		}
		found.Hits += len(keys)
		for _, key := range keys {
			if !seen[key] {
				seen[key] = true
				hits = append(hits, hit{key: key, entry: prefix + key})
			}
		}
	}
	id := strings.TrimSpace(value)
	verifyAll := func(hits []hit) ([]*Summary, error) {
		got := make([]*Summary, len(hits))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(verifyInFlight)
		for i, h := range hits {
			g.Go(func() error {
				sum, err := verify(gctx, js, s, idx, h.key, h.entry, last, forms, id, q)
				got[i] = sum
				return err
			})
		}
		return got, g.Wait()
	}
	got, err := verifyAll(hits)
	if err != nil {
		return nil, err
	}
	for _, sum := range got {
		if sum != nil {
			found.Failures = append(found.Failures, *sum)
		} else {
			found.Stale++
		}
	}
	if len(found.Failures) == 0 && id != "" {
		// No value matched: the value may be a commandId, which the
		// store is keyed by.
		got, err := verifyAll([]hit{{key: Key(id)}})
		if err != nil {
			return nil, err
		}
		if got[0] != nil && got[0].CommandID == id {
			found.Failures = append(found.Failures, *got[0])
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

// verify reads the open failure of the command under key and returns its
// summary when q selects it and its command holds one of forms, or its
// commandId is id; else nil. It reads the index entry on entry (when set)
// for the store subject of the failure it was written for, and the entry
// there: two exact direct gets. When that is gone (the failure was
// replaced under another reason, or closed), or no entry is given, it
// reads the command's newest own entry stored up to last, by the key.
func verify(ctx context.Context, js jetstream.JetStream, s, idx jetstream.Stream, key, entry string, last uint64, forms []string, id string, q Select) (*Summary, error) {
	var newest *directMsg
	at := ""
	if entry != "" {
		m, err := idx.GetLastMsgForSubject(ctx, entry)
		switch {
		case err == nil:
			at = m.Header.Get(HeaderFailureAt)
		case errors.Is(err, jetstream.ErrMsgNotFound) || isNotFound(err):
			return nil, nil // removed meanwhile
		default:
			return nil, fmt.Errorf("read index entry: %w", err)
		}
	}
	if at != "" {
		raw, err := s.GetLastMsgForSubject(ctx, SubjectPrefix+at+"."+key)
		switch {
		case err == nil:
			newest = &directMsg{subject: raw.Subject, header: raw.Header, data: raw.Data, seq: raw.Sequence}
		case errors.Is(err, jetstream.ErrMsgNotFound) || isNotFound(err):
		default:
			return nil, fmt.Errorf("read open failure: %w", err)
		}
	}
	filter := SubjectPrefix + "*.*." + key
	if newest == nil {
		for seq := uint64(1); seq <= last; {
			m, err := nextDirect(ctx, js, Stream, seq, filter)
			if err != nil {
				return nil, err
			}
			if m == nil || m.seq > last {
				break
			}
			newest, seq = m, m.seq+1
		}
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
					msgs = append(msgs, indexMsg(indexSubject(f, key), seq, subjectAt(msg.Subject()), nil))
				}
				msgs = append(msgs, indexMsg(manifestSubject(key), seq, "", manifestBody(forms)))
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
