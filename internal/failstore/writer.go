package failstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/events"
)

// ErrNoStore reports that the store's stream does not exist.
var ErrNoStore = errors.New("the stream " + Stream + " does not exist: run 'consumer setup' (or start the service)")

// Writer opens and resolves open failures. It is safe for concurrent use.
type Writer struct {
	js jetstream.JetStream
	s  jetstream.Stream
	// idx is the exact-value index, nil when it does not exist.
	idx jetstream.Stream
	// pause, when set (tests), is called between the steps of Open and
	// Resolve, so that other writers can run there.
	pause func()
}

func (w *Writer) step() {
	if w.pause != nil {
		w.pause()
	}
}

// OpenWriter binds to the store and its exact-value index, which setup
// creates. Without the index stream (a release before it) the writer
// keeps the store alone.
func OpenWriter(ctx context.Context, js jetstream.JetStream) (*Writer, error) {
	s, err := js.Stream(ctx, Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, ErrNoStore
	}
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", Stream, err)
	}
	idx, err := indexStream(ctx, js)
	if err != nil {
		return nil, err
	}
	return &Writer{js: js, s: s, idx: idx}, nil
}

// Check reads the command's record back and reports whether the change
// still stands: for an opened failure, whether the failure is still the
// command's newest recorded outcome; for a resolution, whether the newest
// recorded outcome is still a contact.created.
type Check func(ctx context.Context) (bool, error)

// Entry is an open failure to store.
type Entry struct {
	Msg       *nats.Msg
	CommandID string
	Conflict  bool
}

// NewEntry builds the entry of an open failure from its failed event, as
// published (body).
func NewEntry(ev *contact.Event, body []byte, conflict bool) (*Entry, error) {
	var f contact.Failed
	if err := json.Unmarshal(ev.Data, &f); err != nil {
		return nil, fmt.Errorf("read failed event %s: %w", ev.ID, err)
	}
	commandID := ev.Subject
	if commandID == "" {
		commandID = f.CommandID
	}
	subject := Subject(f.Reason, f.Provider, commandID)
	if conflict {
		subject = ConflictSubject(f.Provider, commandID, ev.ID)
	}
	msg := nats.NewMsg(subject)
	msg.Data = body
	h := msg.Header
	h.Set(HeaderCommandID, headerText(commandID, events.MaxCommandIDBytes))
	h.Set(HeaderEventID, headerText(ev.ID, 128))
	h.Set(HeaderReason, headerText(string(f.Reason), 64))
	h.Set(HeaderProvider, headerText(f.Provider, 128))
	h.Set(HeaderTime, ev.Time.UTC().Format(time.RFC3339Nano))
	h.Set(HeaderAttempts, strconv.Itoa(f.Attempts))
	h.Set(HeaderRetryable, strconv.FormatBool(f.Retryable))
	h.Set(HeaderMessage, headerText(f.Message, maxHeaderMessage))
	if f.ReplayOf != "" {
		h.Set(HeaderReplayOf, headerText(f.ReplayOf, 128))
	}
	return &Entry{Msg: msg, CommandID: commandID, Conflict: conflict}, nil
}

// headerText makes s fit a header value: valid UTF-8, no control
// characters (a line break would end the header), at most limit bytes.
func headerText(s string, limit int) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			clean = false
			break
		}
	}
	if !clean {
		s = strings.Map(func(r rune) rune {
			if r == utf8.RuneError || unicode.IsControl(r) {
				return ' '
			}
			return r
		}, strings.ToValidUTF8(s, "\uFFFD"))
	}
	if len(s) <= limit {
		return s
	}
	cut := limit - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// Open makes a failed event its command's open failure: it stores the
// entry, asks check whether the failure is still the command's newest
// outcome, and then indexes it (the exact-value index: its values'
// entries, those of an older failure's values it does not hold removed,
// and the command's manifest), and purges the command's older entries;
// or it deletes its own entry when a newer outcome was recorded meanwhile
// (whose writer settles the store and the index). A nil check trusts the
// entry (an outcome that is not recorded, a conflict). Any error leaves the store to be repaired by the next
// Open or Resolve of the command: the caller hands the command back.
func (w *Writer) Open(ctx context.Context, e *Entry, check Check) error {
	ack, err := w.js.PublishMsg(ctx, e.Msg, jetstream.WithExpectStream(Stream))
	if err != nil {
		return fmt.Errorf("store open failure: %w", err)
	}
	if e.Conflict {
		return nil // its subject is its own
	}
	w.step()
	stands := true
	if check != nil {
		if stands, err = check(ctx); err != nil {
			return fmt.Errorf("check open failure: %w", err)
		}
	}
	w.step()
	if !stands {
		return w.delete(ctx, ack.Sequence)
	}
	if w.idx != nil {
		if err := reindex(ctx, w.js, w.idx, Key(e.CommandID), subjectAt(e.Msg.Subject), entryForms(e.Msg.Data), ack.Sequence, w.step); err != nil && !indexGone(err) {
			return err
		}
	}
	return w.purge(ctx, e.CommandID, ack.Sequence)
}

// Resolve removes the open failure of a command whose newest outcome is a
// contact.created: it notes the store's last sequence, asks check whether
// the newest recorded outcome is still the contact.created, and then
// purges the command's entries up to that sequence, their index entries
// first. An entry stored after it is a newer outcome's, or one its own
// writer deletes again.
func (w *Writer) Resolve(ctx context.Context, commandID string, check Check) error {
	info, err := w.s.Info(ctx)
	if err != nil {
		return fmt.Errorf("resolve open failure: %w", err)
	}
	last := info.State.LastSeq
	w.step()
	if check != nil {
		stands, err := check(ctx)
		if err != nil {
			return fmt.Errorf("check resolution: %w", err)
		}
		if !stands {
			return nil
		}
	}
	w.step()
	if w.idx != nil {
		if err := unindexCommand(ctx, w.idx, Key(commandID), last); err != nil && !indexGone(err) {
			return err
		}
	}
	return w.purge(ctx, commandID, last+1)
}

// purge removes the command's own entries stored before sequence below.
func (w *Writer) purge(ctx context.Context, commandID string, below uint64) error {
	if below <= 1 {
		return nil
	}
	err := w.s.Purge(ctx, jetstream.WithPurgeSubject(commandFilter(commandID)), jetstream.WithPurgeSequence(below))
	if err != nil {
		return fmt.Errorf("purge older open failures: %w", err)
	}
	return nil
}

// delete removes one entry; one gone already is no error.
func (w *Writer) delete(ctx context.Context, seq uint64) error {
	err := w.s.DeleteMsg(ctx, seq)
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) && !isNotFound(err) {
		return fmt.Errorf("delete superseded open failure: %w", err)
	}
	return nil
}

// errCodeSequenceNotFound is the server's answer to deleting a message
// that is not there (JSSequenceNotFoundErrF), which nats.go names not.
const errCodeSequenceNotFound jetstream.ErrorCode = 10043

// errCodeNoMessageFound is the server's answer to deleting a message
// removed meanwhile (JSNoMessageFoundErr).
const errCodeNoMessageFound jetstream.ErrorCode = 10057

// isNotFound reports the server's answer for a message that is not there.
// nats.go passes a refused delete on as text only.
func isNotFound(err error) bool {
	if errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
		for _, code := range []jetstream.ErrorCode{errCodeSequenceNotFound, errCodeNoMessageFound, jetstream.JSErrCodeMessageNotFound} {
			if strings.Contains(err.Error(), "err_code="+strconv.Itoa(int(code))+" ") {
				return true
			}
		}
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeMessageNotFound ||
		apiErr.ErrorCode == errCodeSequenceNotFound || apiErr.Code == 404)
}
