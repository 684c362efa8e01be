// Package failstore keeps the open failures: for each commandId whose
// newest outcome is a contact.failed, that failed event, and nothing for
// any other. It is sized by what is open, not by the history of the event
// stream, so that listing, filtering, replaying and discarding failures
// cost what is open whatever the history holds.
//
// The store is the JetStream stream CONTACT_FAILURES, one message per open
// failure on the subject
//
//	contactrelay.failures.<reason>.<provider>.<key>
//
// where key is the command's record key (record.Key, two tokens),
// and at most one message per subject (MaxMsgsPerSubject 1). The server
// filters by reason and provider from the subject, and finds a command's
// entry from its key; the entry's headers summarise it (reason, provider,
// commandId, event id, time, attempts, the message), so that a listing
// reads headers only and fetches whole entries for the page it shows. The
// body is the failed event as published, command included: what a replay
// needs. A conflict (a commandId reused for other content) is no outcome
// of the command's and is kept beside it, one entry per conflicting
// content, under one more token: the conflict event's id.
//
// Writer keeps the store in step with the idempotency records. An entry is
// opened after its outcome is recorded and before its event is published;
// it is then checked against the record read back: if a newer outcome was
// recorded meanwhile the entry is deleted again (that outcome's own writer
// settles the store), else the command's older entries are purged. A
// contact.created resolves a command's entries the same way, purging only
// entries stored before it read the record. Whatever the interleaving of
// instances, the store then holds exactly the newest failure of each
// command whose newest recorded outcome is a failure; a crash between two
// steps leaves the command unacknowledged, and its redelivery repeats the
// steps.
package failstore

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/record"
)

// Names of the store.
const (
	// Stream is the store's JetStream stream.
	Stream = "CONTACT_FAILURES"
	// SubjectPrefix starts every entry's subject.
	SubjectPrefix = "contactrelay.failures."
	// Subjects are the stream's subjects.
	Subjects = SubjectPrefix + ">"
)

// Headers of an entry, summarising its failed event for listings that read
// headers only.
const (
	HeaderCommandID = "Contact-Command-Id"
	HeaderEventID   = "Contact-Event-Id"
	HeaderReason    = "Contact-Reason"
	HeaderProvider  = "Contact-Provider"
	HeaderTime      = "Contact-Time"
	HeaderAttempts  = "Contact-Attempts"
	HeaderRetryable = "Contact-Retryable"
	HeaderMessage   = "Contact-Message"
	HeaderReplayOf  = "Contact-Replay-Of"
)

// maxHeaderMessage bounds the message kept in an entry's headers, for
// listings, grouping and free-text search; the body has it whole.
const maxHeaderMessage = 512

// StreamConfig returns the store's stream configuration: file storage,
// one message per subject, no age or size limit (an open failure stays
// until it is resolved or discarded), direct gets for the pages a listing
// shows.
func StreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              Stream,
		Description:       "contactrelay open failures: the newest contact.failed of each commandId whose newest outcome is a failure",
		Subjects:          []string{Subjects},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: 1,
		Discard:           jetstream.DiscardOld,
		AllowDirect:       true,
		Replicas:          max(replicas, 1),
	}
}

// Key returns the subject tokens that name a command in the store: its
// record key.
func Key(commandID string) string { return record.Key(commandID) }

// ReasonToken returns the subject token of a reason: the reason itself,
// or "_" for one that is not a subject token (no reason of the contract).
func ReasonToken(r contact.Reason) string {
	if safeToken(string(r)) {
		return string(r)
	}
	return "_"
}

// ProviderToken returns the subject token of a provider name: the name
// when it is a plain token (lower-case letters, digits, '-' and '_', at
// most 32 bytes), "_" for none, and "~" and a digest of it otherwise, so
// that no name can add or split tokens.
func ProviderToken(p string) string {
	switch {
	case p == "":
		return "_"
	case safeToken(p):
		return p
	}
	sum := sha256.Sum256([]byte(p))
	return "~" + hex.EncodeToString(sum[:8])
}

func safeToken(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Subject returns the subject of a command's open failure.
func Subject(reason contact.Reason, provider, commandID string) string {
	return SubjectPrefix + ReasonToken(reason) + "." + ProviderToken(provider) + "." + Key(commandID)
}

// ConflictSubject returns the subject of a conflict's entry, beside the
// command's own.
func ConflictSubject(provider, commandID, eventID string) string {
	return SubjectPrefix + string(contact.ReasonConflict) + "." + ProviderToken(provider) + "." + Key(commandID) + "." + token(eventID)
}

// commandFilter matches every entry of the command's own failure, of any
// reason and provider, and not its conflicts'.
func commandFilter(commandID string) string {
	return SubjectPrefix + "*.*." + Key(commandID)
}

// token makes s a subject token: event ids are UUIDs, which are.
func token(s string) string {
	if safeToken(strings.ToLower(s)) || isUUID(s) {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'f' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Summary is an open failure as its entry's headers tell it.
type Summary struct {
	// Seq is the entry's sequence in the store; Subject its subject.
	Seq     uint64
	Subject string

	CommandID string
	EventID   string
	Reason    contact.Reason
	Provider  string
	Time      time.Time
	Attempts  int
	Retryable bool
	// Message is the failure's message, at most maxHeaderMessage bytes.
	Message string
	// ReplayOf is the generation the failure is of: empty for the
	// original command, the replayed failure's event id for a replay.
	ReplayOf string
	// Conflict is set for a conflict's entry.
	Conflict bool
	// Size is the entry's body size in bytes.
	Size int
}
