package record

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/contactrelay/contactrelay/contact"
)

// Record is the idempotency record of one commandId, as stored in Bucket
// under Key(CommandID) (docs/RECORDS.md). It is the single source of truth for "was this contact created", "is a create call under way" and
// "what was this generation's outcome", shared by every consumer instance.
type Record struct {
	// Version (v) is the stored form's version (Version when written).
	Version   int    `json:"v,omitempty"`
	CommandID string `json:"commandId"`
	// Fingerprint is the digest of the content of the first command that
	// used this commandId in its original generation, and FirstUsed when
	// that was (by the deciding instance's clock: for messages only). An
	// original command with other content is a conflict.
	Fingerprint string    `json:"fingerprint,omitempty"`
	FirstUsed   time.Time `json:"firstUsed,omitzero"`
	// Contact is set once the contact exists at the provider, whoever
	// created it and however it was found; ContactFingerprint is the
	// fingerprint of the content it was created for. No other content can
	// have a contact under this commandId.
	Contact            *StoredContact `json:"contact,omitempty"`
	ContactFingerprint string         `json:"contactFingerprint,omitempty"`
	// Unsettled is set when a create call may have reached the provider
	// without its answer being recorded: the next attempt looks the
	// contact up first.
	Unsettled bool `json:"unsettled,omitempty"`
	// InFlight is set, with Unsettled, while a create call is under way
	// (claimed); HoldMillis is how long, at most, the claimer's call can
	// last. Another delivery that sees the claim waits that long on its
	// own clock, from when it first saw this revision, before taking the
	// claim for one whose instance died: no two clocks are compared.
	InFlight   bool  `json:"inFlight,omitempty"`
	HoldMillis int64 `json:"holdMs,omitempty"`
	// LastFailure is the provider's answer to the last failed call, for
	// the exhausted event of a delivery that made no call of its own.
	LastFailure *contact.Upstream `json:"lastFailure,omitempty"`
	// Answers are the provider's answers to the command's last failed
	// calls, oldest first, at most MaxAnswers (AddAnswer keeps the bound),
	// for a failure's page.
	Answers []Answer `json:"answers,omitempty"`
	// Generations holds per generation ("" for the original command, the
	// Contact-Replay-Of value for a replay) its create attempts and its
	// outcome once decided. At most MaxGenerations are kept (the oldest
	// decided ones give way), and the record stays under MaxSize.
	Generations map[string]*Generation `json:"generations,omitempty"`
	// Order counts the generations ever added, to tell the oldest.
	Order int `json:"order,omitempty"`

	// InFlightUntil is read from records written before version 2, whose
	// holds were absolute times; it is never written.
	InFlightUntil time.Time `json:"inFlightUntil,omitzero"`
}

// Version is the version of the records this code writes. Version 1
// (no "v" member) is read too; a newer one is refused, so that an older
// instance never rewrites what it does not understand.
const Version = 2

// MaxAnswers bounds Record.Answers, and MaxAnswerMessage each answer's
// message, in bytes.
const (
	MaxAnswers       = 10
	MaxAnswerMessage = 300
)

// Answer is one failed call's answer: when the call started, its class
// ("transient", "permanent", "ambiguous") and what the provider said.
type Answer struct {
	At       time.Time        `json:"at"`
	Class    string           `json:"class"`
	Upstream contact.Upstream `json:"upstream"`
}

// AddAnswer appends a, its message cut to MaxAnswerMessage bytes (at a
// rune boundary), keeping the last MaxAnswers.
func (r *Record) AddAnswer(a Answer) {
	if m := a.Upstream.Message; len(m) > MaxAnswerMessage {
		cut := MaxAnswerMessage
		for cut > 0 && !utf8.RuneStart(m[cut]) {
			cut--
		}
		a.Upstream.Message = m[:cut] + "…"
	}
	r.Answers = append(r.Answers, a)
	if n := len(r.Answers); n > MaxAnswers {
		r.Answers = slices.Clone(r.Answers[n-MaxAnswers:])
	}
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
	// Outcome is the terminal event, encoded, once decided, without the
	// command a failed event carries (the delivery's own body is put back
	// when it is repeated); Provider and Reason repeat what it says.
	Outcome  json.RawMessage `json:"outcome,omitempty"`
	Provider string          `json:"provider,omitempty"`
	Reason   contact.Reason  `json:"reason,omitempty"`
	// Order is the record's Order when the generation was added.
	Order int `json:"order,omitempty"`
	// OutcomeLine is read from version 1 records, which kept outcomes on
	// lines after the record's own.
	OutcomeLine int `json:"outcomeLine,omitempty"`
	// Fingerprint is the content fingerprint of the generation's command,
	// for a replay: the same generation sent again with content no
	// generation had is a conflict, not a repeat.
	Fingerprint string `json:"fingerprint,omitempty"`
	// Sequence is the stream sequence of the message whose delivery
	// decided the generation: a redelivery of that message repeats the
	// generation's own outcome, which a crash may have kept from being
	// published, where any other message is answered with the command's
	// newest outcome.
	Sequence uint64 `json:"seq,omitempty"`
}

// Bounds of a record, so that every record this code builds can be written
// (the server's max payload is 1 MiB by default): at most MaxGenerations
// generations and MaxSize bytes encoded.
const (
	MaxGenerations = 8
	MaxSize        = 512 << 10
)

// Expires reports whether the record may expire: not while its last
// create call's outcome is unknown (a call claimed and perhaps under way,
// or one whose answer was lost and that no lookup has settled yet), so
// that the mark that says to look the contact up before creating again is
// never lost. A store's TTL counts from the write that settles it.
func (r *Record) Expires() bool { return !r.Unsettled && !r.InFlight }

// AddGeneration returns the record's entry for gen, adding it (as the
// newest) when there is none.
func (r *Record) AddGeneration(gen string) *Generation {
	if r.Generations == nil {
		r.Generations = map[string]*Generation{}
	}
	g := r.Generations[gen]
	if g == nil {
		r.Order++
		g = &Generation{Order: r.Order}
		r.Generations[gen] = g
	}
	return g
}

// prune drops the oldest generations other than keep until at most
// MaxGenerations remain.
func (r *Record) prune(keep string) {
	for len(r.Generations) > MaxGenerations && r.dropOldest(keep) {
	}
}

// dropOldest drops the oldest generation other than keep, reporting
// whether there was one.
func (r *Record) dropOldest(keep string) bool {
	oldest, found := "", false
	for name, g := range r.Generations {
		if name == keep {
			continue
		}
		if !found || g.Order < r.Generations[oldest].Order {
			oldest, found = name, true
		}
	}
	if found {
		delete(r.Generations, oldest)
	}
	return found
}

// MaxPlainKey is the longest commandId, in bytes, kept readable in its
// record key (see Key); longer ones are keyed by digest.
const MaxPlainKey = 256

// Key returns the store key of a commandId: "c." and its URL-safe
// base64 form, since a commandId may hold characters a key may not; or,
// for a commandId over 256 bytes (one taken from a long Nats-Msg-Id
// header), "d." and the base64 of its SHA-256. A key is therefore at most
// 344 bytes, whatever the input.
func Key(commandID string) string {
	if len(commandID) > MaxPlainKey {
		sum := sha256.Sum256([]byte(commandID))
		return "d." + base64.RawURLEncoding.EncodeToString(sum[:])
	}
	// Built in place: one allocation, the key itself.
	var src [MaxPlainKey]byte
	n := copy(src[:], commandID)
	var dst [2 + (MaxPlainKey*4+2)/3]byte
	copy(dst[:], "c.")
	m := base64.RawURLEncoding.EncodedLen(n)
	base64.RawURLEncoding.Encode(dst[2:2+m], src[:n])
	return string(dst[:2+m])
}

// ErrVersion refuses a record written by a newer version: an older reader
// never rewrites, or answers from, what it does not understand.
var ErrVersion = errors.New("record written by a newer version of contactrelay")

// Decode reads a stored record: version 2, a JSON document, or version 1,
// the record's JSON line followed by one line per outcome. A newer version
// is refused with ErrVersion.
func Decode(val []byte) (Record, error) {
	head, rest, _ := bytes.Cut(val, []byte{'\n'})
	var rec Record
	dec := json.NewDecoder(bytes.NewReader(head))
	dec.UseNumber() // provider ids stay exact, however long
	if err := dec.Decode(&rec); err != nil {
		return Record{}, err
	}
	switch rec.Version {
	case 0: // version 1
		lines := bytes.Split(rest, []byte{'\n'})
		for _, g := range rec.Generations {
			if n := g.OutcomeLine; n > 0 {
				if n > len(lines) || len(rest) == 0 {
					return Record{}, fmt.Errorf("no outcome line %d", n)
				}
				g.Outcome, g.OutcomeLine = lines[n-1], 0
			}
		}
		if !rec.InFlightUntil.IsZero() {
			// A version 1 claim: its hold was an absolute time. Treat it as
			// a claim of the default hold, measured from when it is seen.
			rec.InFlight, rec.InFlightUntil = true, time.Time{}
		}
	case Version:
	default:
		return Record{}, fmt.Errorf("%w (version %d; this one writes %d)", ErrVersion, rec.Version, Version)
	}
	return rec, nil
}

// ErrTooLarge reports a record that could not be brought under MaxSize:
// only a generation's own outcome larger than that does.
var ErrTooLarge = errors.New("record too large")

// Encode returns the stored form of rec, version 2, after dropping its
// oldest generations (other than keep) as needed to keep it within
// MaxGenerations and MaxSize; rec is changed accordingly. Its bytes are
// json.Marshal's, written without reflection.
func Encode(rec *Record, keep string) ([]byte, error) {
	rec.Version = Version
	rec.InFlightUntil = time.Time{}
	rec.prune(keep)
	for {
		size := 512
		for _, g := range rec.Generations {
			size += 96 + len(g.Outcome)
		}
		val, err := rec.appendJSON(make([]byte, 0, size))
		if err != nil {
			return nil, err
		}
		if len(val) <= MaxSize {
			return val, nil
		}
		if !rec.dropOldest(keep) {
			return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(val))
		}
	}
}

// sortedGenerations appends the names of gs to keys, and sorts them
// (keys may be a caller's stack array: no allocation for a record of at
// most MaxGenerations).
func sortedGenerations(keys []string, gs map[string]*Generation) []string {
	for k := range gs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
