package handlers

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/contactrelay/contactrelay/internal/events"
)

// Store keeps the idempotency records of commands, keyed by commandId, with
// compare-and-set writes. Implementations must be safe for concurrent use.
type Store interface {
	// Get returns the value stored under key and its revision, or a zero
	// revision when there is none.
	Get(ctx context.Context, key string) (value []byte, revision uint64, err error)
	// Put stores value under key if the key's revision is still revision
	// (zero: only if the key does not exist). It returns the new revision,
	// or ok false when the key changed meanwhile and nothing was written.
	Put(ctx context.Context, key string, value []byte, revision uint64) (newRevision uint64, ok bool, err error)
}

// AsyncStore is a Store that can also write without waiting for the
// answer: done is called once, with what Put would return, on another
// goroutine, and must not block.
type AsyncStore interface {
	Store
	PutAsync(key string, value []byte, revision uint64, done func(newRevision uint64, ok bool, err error))
}

// Record is the idempotency record of one commandId. It is the single source
// of truth for "was this contact created" and "what was this generation's
// outcome", shared by every consumer instance.
type Record struct {
	CommandID string `json:"commandId"`
	// Contact is set once the contact exists at the provider, whoever
	// created it and however it was found.
	Contact *StoredContact `json:"contact,omitempty"`
	// Unsettled is set just before a create call and cleared when its answer
	// is known: a record found unsettled after InFlightUntil means a create
	// may have reached the provider without its answer being recorded, so
	// the next attempt looks the contact up first.
	Unsettled     bool      `json:"unsettled,omitempty"`
	InFlightUntil time.Time `json:"inFlightUntil,omitzero"`
	// LastFailure is the provider's answer to the last failed call, for
	// the exhausted event of a delivery that made no call of its own.
	LastFailure *events.Upstream `json:"lastFailure,omitempty"`
	// Generations holds per generation ("" for the original command, the
	// Contact-Replay-Of value for a replay) its create attempts and its
	// outcome once decided.
	Generations map[string]*Generation `json:"generations,omitempty"`
}

// StoredContact is a created contact as recorded.
type StoredContact struct {
	Provider  string         `json:"provider"`
	ID        string         `json:"id"`
	Upstream  map[string]any `json:"upstream,omitempty"`
	CreatedAt time.Time      `json:"createdAt"`
}

// Generation is the state of one generation of a command.
type Generation struct {
	Attempts int `json:"attempts"`
	// Outcome is the terminal event, encoded, once decided; Provider and
	// Reason repeat what it says, for logs and metrics.
	Outcome  json.RawMessage `json:"outcome,omitempty"`
	Provider string          `json:"provider,omitempty"`
	Reason   events.Reason   `json:"reason,omitempty"`
	// OutcomeLine says, in a stored record, which line after the first
	// holds the outcome (see records.save).
	OutcomeLine int `json:"outcomeLine,omitempty"`
}

// generation returns the record's entry for gen, creating it if needed.
func (r *Record) generation(gen string) *Generation {
	if r.Generations == nil {
		r.Generations = map[string]*Generation{}
	}
	g := r.Generations[gen]
	if g == nil {
		g = &Generation{}
		r.Generations[gen] = g
	}
	return g
}

// RecordKey returns the store key of a commandId: its URL-safe base64
// form, since a commandId may hold characters a key may not.
func RecordKey(commandID string) string {
	return "c." + base64.RawURLEncoding.EncodeToString([]byte(commandID))
}

// records reads and writes Records through a Store.
type records struct {
	store Store
}

// load returns the record of a command and its revision (zero if none).
func (rs records) load(ctx context.Context, commandID string) (Record, uint64, error) {
	val, rev, err := rs.store.Get(ctx, RecordKey(commandID))
	if err != nil {
		return Record{}, 0, fmt.Errorf("read record of %s: %w", commandID, err)
	}
	rec := Record{CommandID: commandID}
	if rev == 0 {
		return rec, 0, nil
	}
	head, rest, _ := bytes.Cut(val, []byte{'\n'})
	dec := json.NewDecoder(bytes.NewReader(head))
	dec.UseNumber() // provider ids stay exact, however long
	if err := dec.Decode(&rec); err != nil {
		return Record{}, 0, fmt.Errorf("decode record of %s: %w", commandID, err)
	}
	lines := bytes.Split(rest, []byte{'\n'})
	for _, g := range rec.Generations {
		if n := g.OutcomeLine; n > 0 {
			if n > len(lines) || len(rest) == 0 {
				return Record{}, 0, fmt.Errorf("decode record of %s: no outcome line %d", commandID, n)
			}
			g.Outcome, g.OutcomeLine = lines[n-1], 0
		}
	}
	return rec, rev, nil
}

// errConflict reports that a record changed between its read and its write.
var errConflict = errors.New("record changed concurrently")

// save writes rec if its revision is still rev. A stored record is a line
// of JSON, then the generations' outcomes, one encoded event a line, as
// they are: re-encoding them inside the record would cost a pass over
// every event at every write. (Encoded JSON holds no raw newline.)
func (rs records) save(ctx context.Context, rec Record, rev uint64) (uint64, error) {
	val, err := rs.encode(rec)
	if err != nil {
		return 0, err
	}
	newRev, ok, err := rs.store.Put(ctx, RecordKey(rec.CommandID), val, rev)
	if err != nil {
		return 0, fmt.Errorf("write record of %s: %w", rec.CommandID, err)
	}
	if !ok {
		return 0, errConflict
	}
	return newRev, nil
}

// encode returns the stored form of rec (see save).
func (records) encode(rec Record) ([]byte, error) {
	size := 512
	for _, g := range rec.Generations {
		size += 1 + len(g.Outcome)
	}
	var outcomes [][]byte
	val, err := rec.appendTo(make([]byte, 0, size), &outcomes)
	if err != nil {
		return nil, fmt.Errorf("encode record of %s: %w", rec.CommandID, err)
	}
	for _, o := range outcomes {
		val = append(append(val, '\n'), o...)
	}
	return val, nil
}

// update applies change to the current record of commandID and saves it,
// reading again and reapplying on a concurrent change. change sees the
// freshest record; it returns false to leave the record as it is.
func (rs records) update(ctx context.Context, commandID string, rec Record, rev uint64, change func(*Record) bool) (Record, uint64, error) {
	for try := 0; ; try++ {
		if !change(&rec) {
			return rec, rev, nil
		}
		newRev, err := rs.save(ctx, rec, rev)
		if err == nil {
			return rec, newRev, nil
		}
		if !errors.Is(err, errConflict) || try >= 16 {
			return Record{}, 0, err
		}
		if rec, rev, err = rs.load(ctx, commandID); err != nil {
			return Record{}, 0, err
		}
	}
}
