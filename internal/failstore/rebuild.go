package failstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/contact"
)

// MetadataRebuilt is the store stream's metadata key that records the
// event stream's last sequence when the store was built from the event
// history ("0": nothing needed building).
const MetadataRebuilt = "contactrelay.failures.rebuilt-through"

// Rebuilt reports whether the store has been built from the event history
// (or needed no building).
func Rebuilt(info *jetstream.StreamInfo) bool {
	_, ok := info.Config.Metadata[MetadataRebuilt]
	return ok
}

// RebuildStats counts what Rebuild did.
type RebuildStats struct {
	// Read counts the events read, Through is the last sequence read.
	Read    int
	Through uint64
	// Open counts the commands whose newest outcome in the history is a
	// failure, and the conflicts; Opened those stored as open (the others
	// were superseded by a newer recorded outcome).
	Open, Opened int
	Took         time.Duration
}

// Rebuild builds the open failures from the event history: it reads
// eventStream up to its last sequence, keeps per commandId its newest
// outcome (and every conflict), and opens each failure that is newest,
// checked against the command's record as the service's writes are (check
// returns the Check for a failure; nil trusts the history). It is
// idempotent: run again it stores the same set. It then builds the
// exact-value index again from the store (IndexAll). Progress, if set, is
// told the events read out of the total every so often. Once done it records
// the sequence it read through in the store's metadata.
func Rebuild(ctx context.Context, js jetstream.JetStream, eventStream string, check func(commandID, eventID string) Check, progress func(read, total uint64)) (RebuildStats, error) {
	start := time.Now()
	var st RebuildStats
	w, err := OpenWriter(ctx, js)
	if err != nil {
		return st, err
	}
	// The index is built whole once the store is (IndexAll), rather than
	// kept in step through every rewrite.
	idx := w.idx
	w.idx = nil
	es, err := js.Stream(ctx, eventStream)
	if err != nil {
		return st, fmt.Errorf("look up stream %s: %w", eventStream, err)
	}
	last := es.CachedInfo().State.LastSeq
	newest := map[string]uint64{}    // commandId → sequence of its newest failure
	conflicts := map[string]uint64{} // conflict event id → sequence
	if es.CachedInfo().State.Msgs > 0 {
		if err := readHistory(ctx, es, last, &st, newest, conflicts, progress); err != nil {
			return st, err
		}
	}
	st.Through = last
	st.Open = len(newest) + len(conflicts)
	open := func(seq uint64, conflict bool) error {
		raw, err := es.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) || isNotFound(err) {
			return nil // gone with the stream's limits meanwhile
		}
		if err != nil {
			return fmt.Errorf("read event %d: %w", seq, err)
		}
		var ev contact.Event
		if err := json.Unmarshal(raw.Data, &ev); err != nil {
			return nil
		}
		e, err := NewEntry(&ev, raw.Data, conflict)
		if err != nil {
			return nil
		}
		var c Check
		if check != nil && !conflict {
			c = check(e.CommandID, ev.ID)
		}
		if err := w.Open(ctx, e, c); err != nil {
			return err
		}
		st.Opened++
		return nil
	}
	// Open them in the order of the history, so that the store's order
	// is the order of time (LoadPage reads newest first by sequence).
	type opening struct {
		seq      uint64
		conflict bool
	}
	order := make([]opening, 0, len(newest)+len(conflicts))
	for _, seq := range newest {
		order = append(order, opening{seq, false})
	}
	for _, seq := range conflicts {
		order = append(order, opening{seq, true})
	}
	slices.SortFunc(order, func(a, b opening) int { return cmp.Compare(a.seq, b.seq) })
	for _, o := range order {
		if err := open(o.seq, o.conflict); err != nil {
			return st, err
		}
	}
	// Opened counted every write; those the records superseded were
	// deleted again: count what is open now.
	if snap, err := Load(ctx, js, Select{}); err == nil {
		st.Opened = len(snap.Failures)
	}
	info, err := w.s.Info(ctx)
	if err != nil {
		return st, fmt.Errorf("look up stream %s: %w", Stream, err)
	}
	cfg := info.Config
	if cfg.Metadata == nil {
		cfg.Metadata = map[string]string{}
	}
	cfg.Metadata[MetadataRebuilt] = strconv.FormatUint(last, 10)
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return st, fmt.Errorf("record the rebuild in %s: %w", Stream, err)
	}
	if idx != nil {
		if _, err := IndexAll(ctx, js, nil); err != nil {
			return st, fmt.Errorf("index the rebuilt open failures: %w", err)
		}
	}
	st.Took = time.Since(start)
	return st, nil
}

// historyEvent is what Rebuild reads of an event.
type historyEvent struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Subject string `json:"subject"`
	Data    struct {
		CommandID string         `json:"commandId"`
		Reason    contact.Reason `json:"reason"`
	} `json:"data"`
}

func readHistory(ctx context.Context, es jetstream.Stream, last uint64, st *RebuildStats, newest, conflicts map[string]uint64, progress func(read, total uint64)) error {
	lastReport := time.Now()
	err := ReadUpTo(ctx, es, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{contact.SubjectCreated, contact.SubjectFailed},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}, last, func(msg jetstream.Msg, seq uint64) {
		st.Read++
		var ev historyEvent
		if json.Unmarshal(msg.Data(), &ev) == nil {
			id := ev.Subject
			if id == "" {
				id = ev.Data.CommandID
			}
			switch {
			case ev.Type == contact.SubjectCreated:
				delete(newest, id)
			case ev.Type != contact.SubjectFailed:
			case ev.Data.Reason == contact.ReasonConflict:
				conflicts[ev.ID] = seq
			default:
				newest[id] = seq
			}
		}
		if progress != nil && time.Since(lastReport) > 200*time.Millisecond {
			progress(seq, last)
			lastReport = time.Now()
		}
	})
	if err != nil {
		return fmt.Errorf("read the event history: %w", err)
	}
	if progress != nil {
		progress(last, last)
	}
	return nil
}
