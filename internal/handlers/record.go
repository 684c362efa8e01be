package handlers

import (
	"context"
	"errors"
	"fmt"

	"github.com/contactrelay/contactrelay/record"
)

// Store keeps the idempotency records of commands, keyed by record.Key, with
// compare-and-set writes. Implementations must be safe for concurrent use.
type Store interface {
	// Get returns the value stored under key and its revision, or a zero
	// revision when there is none.
	Get(ctx context.Context, key string) (value []byte, revision uint64, err error)
	// Put stores value under key if the key's revision is still revision
	// (zero: only if the key does not exist). It returns the new revision,
	// or ok false when the key changed meanwhile and nothing was written.
	// expires says whether the record may expire (a store with a TTL
	// counts it from this write); false for a record whose create call's
	// outcome is unknown (record.Record.Expires), which must outlive any TTL.
	Put(ctx context.Context, key string, value []byte, revision uint64, expires bool) (newRevision uint64, ok bool, err error)
}

// records reads and writes Records through a Store.
type records struct {
	store Store
}

// load returns the record of a command and its revision (zero if none).
func (rs records) load(ctx context.Context, commandID string) (record.Record, uint64, error) {
	val, rev, err := rs.store.Get(ctx, record.Key(commandID))
	if err != nil {
		return record.Record{}, 0, fmt.Errorf("read record of %s: %w", shortID(commandID), err)
	}
	if rev == 0 {
		return record.Record{CommandID: commandID}, 0, nil
	}
	rec, err := record.Decode(val)
	if err != nil {
		return record.Record{}, 0, fmt.Errorf("decode record of %s: %w", shortID(commandID), err)
	}
	if rec.CommandID != commandID {
		// Two commandIds whose digests collide: refuse rather than mix.
		return record.Record{}, 0, fmt.Errorf("record of %s holds another commandId", shortID(commandID))
	}
	return rec, rev, nil
}

// errConflict reports that a record changed between its read and its write.
var errConflict = errors.New("record changed concurrently")

// save writes rec if its revision is still rev.
func (rs records) save(ctx context.Context, rec record.Record, rev uint64) (uint64, error) {
	return rs.saveAt(ctx, record.Key(rec.CommandID), rec, rev)
}

// saveAt is save with the record's key, record.Key(rec.CommandID), known.
func (rs records) saveAt(ctx context.Context, key string, rec record.Record, rev uint64) (uint64, error) {
	val, err := encode(&rec, "")
	if err != nil {
		return 0, err
	}
	newRev, ok, err := rs.store.Put(ctx, key, val, rev, rec.Expires())
	if err != nil {
		return 0, fmt.Errorf("write record of %s: %w", shortID(rec.CommandID), err)
	}
	if !ok {
		return 0, errConflict
	}
	return newRev, nil
}

// encode returns the stored form of rec (record.Encode), its errors naming
// the command.
func encode(rec *record.Record, keep string) ([]byte, error) {
	val, err := record.Encode(rec, keep)
	if err != nil {
		return nil, fmt.Errorf("encode record of %s: %w", shortID(rec.CommandID), err)
	}
	return val, nil
}

// update applies change to the current record of commandID and saves it,
// reading again and reapplying on a concurrent change. change sees the
// freshest record; it returns false to leave the record as it is.
func (rs records) update(ctx context.Context, commandID string, rec record.Record, rev uint64, change func(*record.Record) bool) (record.Record, uint64, error) {
	for try := 0; ; try++ {
		if !change(&rec) {
			return rec, rev, nil
		}
		newRev, err := rs.save(ctx, rec, rev)
		if err == nil {
			return rec, newRev, nil
		}
		if !errors.Is(err, errConflict) || try >= 16 {
			return record.Record{}, 0, err
		}
		if rec, rev, err = rs.load(ctx, commandID); err != nil {
			return record.Record{}, 0, err
		}
	}
}

// cloneGenerations returns a deep copy of gs, to change without touching
// a record another goroutine may read.
func cloneGenerations(gs map[string]*record.Generation) map[string]*record.Generation {
	out := make(map[string]*record.Generation, len(gs)+1)
	for k, g := range gs {
		c := *g
		out[k] = &c
	}
	return out
}

// shortID returns a commandId fit for an error message: whole when short,
// else its start and length.
func shortID(id string) string {
	const n = 64
	if len(id) <= n {
		return id
	}
	cut := n
	for cut > 0 && !utf8RuneStart(id[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", id[:cut], len(id))
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
