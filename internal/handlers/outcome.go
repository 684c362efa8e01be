package handlers

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/clients/provider"
	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/record"
)

// storeRetryDelay is how long a command waits for redelivery when its record
// could not be read or written (NATS trouble): short, since no provider is
// being spared.
const storeRetryDelay = 2 * time.Second

// conclusion is what a delivery concluded, before it is made a Decision
// against the freshest record: a contact (created or found), or a failure.
type conclusion struct {
	contact  *provider.Contact
	reason   contact.Reason
	provider string // the chosen provider of a failure, if any
	message  string
	errors   []contact.FieldError
	upstream *contact.Upstream
}

// terminal reports the reasons whose command message is terminated rather
// than acknowledged: bad input that no redelivery can mend.
func terminal(reason contact.Reason) bool {
	switch reason {
	case contact.ReasonMalformed, contact.ReasonInvalid, contact.ReasonUnroutable, contact.ReasonConflict:
		return true
	}
	return false
}

// fromRecord returns the decision the record alone makes. A command whose
// generation is decided is answered with the command's newest recorded
// outcome when its content is that of one of the command's generations
// (Record.resent), and with a conflict otherwise; a redelivery of the very
// message that decided its generation repeats that generation's own
// outcome, which a crash may have kept from being published. A generation
// not yet decided is a conflict when its content is not the content its
// commandId (or its replay) was first used for; else, for a command that
// is not bad input, its contact, if the record holds one, answers it.
func (h *Handler) fromRecord(d *delivery) (Decision, bool) {
	if d.rev == 0 {
		return Decision{}, false
	}
	gen, fp := d.m.Generation, d.in.fingerprint
	if d.rec.Decided(gen) {
		if g := d.rec.Generations[gen]; g != nil && g.Sequence != 0 && g.Sequence == d.m.Sequence && d.rec.ContentOf(gen) == fp {
			return h.repeat(d, gen, g), true
		}
		if name, g, ok := d.rec.Resent(gen, fp); ok {
			return h.repeat(d, name, g), true
		}
		theirs := cmp.Or(d.rec.ContentOf(gen), d.rec.ContactFingerprint, d.rec.Fingerprint)
		return h.conflict(d, theirs), true
	}
	if gen == "" && d.rec.Fingerprint != "" && d.rec.Fingerprint != fp {
		return h.conflict(d, d.rec.Fingerprint), true
	}
	if g := d.rec.Generations[gen]; gen != "" && g != nil && g.Fingerprint != "" && g.Fingerprint != fp {
		return h.conflict(d, g.Fingerprint), true
	}
	if d.rec.Contact != nil && d.in.bad == nil {
		if cfp := d.rec.ContactFingerprint; cfp != "" && cfp != fp {
			// The contact exists for other content: no replay can make
			// this content a second contact under the same commandId.
			return h.conflict(d, cfp), true
		}
		c := d.rec.Contact
		dec := h.conclude(d, conclusion{contact: &provider.Contact{ID: c.ID, Upstream: c.Upstream}})
		dec.FromRecord = true
		return dec, true
	}
	return Decision{}, false
}

// conclude makes c the generation's outcome in a copy of the delivery's
// record, and returns the Decision that records and publishes it. A
// failure of a command whose contact exists meanwhile is contact.created
// instead; a generation with an outcome keeps it.
//
// conclude is the last use of the delivery's record, whose generations are
// the delivery's own (decoded from the store, or the copy its claim
// made): it changes them in place, copying nothing.
func (h *Handler) conclude(d *delivery, c conclusion) Decision {
	r := d.rec
	if d.m.Generation == "" && r.Fingerprint == "" {
		r.Fingerprint, r.FirstUsed = d.in.fingerprint, h.cfg.Now().UTC()
	}
	g := r.AddGeneration(d.m.Generation)
	if g.Outcome != nil {
		return h.repeat(d, d.m.Generation, g)
	}
	if d.m.Generation != "" && g.Fingerprint == "" {
		g.Fingerprint = d.in.fingerprint
	}
	if c.contact == nil && r.Contact != nil && !terminal(c.reason) {
		c = conclusion{contact: &provider.Contact{ID: r.Contact.ID, Upstream: r.Contact.Upstream}}
	}

	var (
		typ    = contact.SubjectCreated
		data   any
		stored any // data as recorded: a failed event without its command
		prov   string
	)
	if c.contact != nil {
		if r.Contact == nil {
			r.Contact = &record.StoredContact{Provider: d.cmd.Provider, ID: c.contact.ID, Upstream: boundUpstream(c.contact.Upstream), CreatedAt: h.cfg.Now().UTC()}
			r.ContactFingerprint = d.in.fingerprint
		}
		r.Unsettled, r.InFlight, r.HoldMillis = false, false, 0
		created := h.createdData(d, r.Contact, g)
		data, prov = created, created.Provider
		stored = data // one box for both
	} else {
		typ, prov = contact.SubjectFailed, c.provider
		failed := contact.Failed{
			CommandID: d.cmd.CommandID,
			Provider:  c.provider,
			Reason:    c.reason,
			Retryable: c.reason.Retryable(),
			Message:   c.message,
			Errors:    c.errors,
			Upstream:  c.upstream,
			Attempts:  g.Attempts,
			ReplayOf:  d.m.Generation,
			Metadata:  d.cmd.Metadata,
		}
		if failed.Upstream == nil && (c.reason == contact.ReasonRejected || c.reason == contact.ReasonExhausted || c.reason == contact.ReasonAmbiguous) {
			failed.Upstream = r.LastFailure
		}
		stored = failed
		attachCommand(&failed, d.m.Body)
		data = failed
	}
	now := h.cfg.Now()
	ev, err := events.NewEvent(h.cfg.Source, typ, d.cmd.CommandID, d.m.Generation, now, data)
	if err != nil {
		return h.unencodable(d, err)
	}
	full := ev.AppendJSON(make([]byte, 0, 320+len(ev.Data)))
	if typ == contact.SubjectCreated {
		g.Outcome = full
	} else {
		sev, err := events.NewEvent(h.cfg.Source, typ, d.cmd.CommandID, d.m.Generation, now, stored)
		if err != nil {
			return h.unencodable(d, err)
		}
		g.Outcome = sev.AppendJSON(nil)
	}
	g.Provider, g.Reason, g.Sequence = prov, c.reason, d.m.Sequence

	dec := Decision{Action: Ack, Event: &ev, EventJSON: full, CommandID: d.cmd.CommandID,
		Provider: prov, Reason: c.reason, Attempts: g.Attempts, outcome: &c}
	if terminal(c.reason) {
		dec.Action = Term
	}
	if c.reason != "" {
		dec.Err = errors.New(c.message)
	}
	val, err := encode(&r, d.m.Generation)
	if err != nil {
		// Only an outcome larger than a record may hold gets here: publish
		// it unrecorded rather than loop on a write that cannot succeed.
		h.cfg.Logger.Error("outcome not recorded", "commandId", shortID(d.cmd.CommandID), "error", err)
		if c.reason != "" {
			dec.Failure = &FailureChange{Open: true}
		}
		return dec
	}
	key := d.recordKey()
	dec.Write = &Write{Key: key, Value: val, Revision: d.rev, Expires: r.Expires()}
	dec.Failure = failureChange(&r, d.m.Generation, key, c.reason)
	return dec
}

// unencodable answers an event that could not be encoded (data no JSON
// can carry): a failed event with the raw command, which always encodes.
func (h *Handler) unencodable(d *delivery, err error) Decision {
	data := contact.Failed{CommandID: d.cmd.CommandID, Reason: contact.ReasonMalformed,
		Message: "the outcome could not be encoded: " + err.Error(), ReplayOf: d.m.Generation}
	data.CommandRaw = d.m.Body
	ev, _ := events.NewEvent(h.cfg.Source, contact.SubjectFailed, d.cmd.CommandID, d.m.Generation, h.cfg.Now(), data)
	return Decision{Action: Term, Event: &ev, EventJSON: ev.AppendJSON(nil), CommandID: d.cmd.CommandID,
		Reason: contact.ReasonMalformed, Err: err, Failure: &FailureChange{Open: true}}
}

// repeat returns the recorded outcome of generation gen (the delivery's
// own, or the newest of its command), as recorded. A failed event, kept
// without its command, gets the delivery's command back when the delivery
// has that generation's content; otherwise it is repeated without one,
// rather than with a command it was not decided for, and the open
// failures are left as its own decision made them.
func (h *Handler) repeat(d *delivery, gen string, g *record.Generation) Decision {
	dec := Decision{Action: Ack, CommandID: d.cmd.CommandID, Provider: g.Provider, Reason: g.Reason,
		Attempts: g.Attempts, FromRecord: true, EventJSON: g.Outcome,
		Failure: failureChange(&d.rec, gen, d.recordKey(), g.Reason)}
	if terminal(g.Reason) {
		dec.Action = Term
	}
	if g.Reason != "" {
		dec.Err = fmt.Errorf("%s, as decided earlier", g.Reason)
	}
	var ev contact.Event
	if err := json.Unmarshal(g.Outcome, &ev); err != nil {
		// Our own encoding: only a damaged record gets here. Publishing
		// the bytes as they are still repeats the outcome.
		dec.Event = &contact.Event{Type: contact.SubjectFailed}
		return dec
	}
	dec.Event = &ev
	if ev.Type != contact.SubjectFailed {
		return dec
	}
	var f contact.Failed
	if err := json.Unmarshal(ev.Data, &f); err != nil || f.Command != nil || f.CommandRaw != nil {
		return dec // recorded with its command (version 1), or damaged
	}
	content := d.rec.ContentOf(gen)
	if content != d.in.fingerprint && (gen != d.m.Generation || content != "") {
		dec.Failure = nil
		return dec
	}
	attachCommand(&f, d.m.Body)
	full, err := events.NewEvent(ev.Source, ev.Type, d.cmd.CommandID, gen, ev.Time, f)
	if err != nil || full.ID != ev.ID {
		return dec
	}
	dec.Event = &full
	dec.EventJSON = full.AppendJSON(make([]byte, 0, 320+len(full.Data)))
	return dec
}

// conflict answers a command whose commandId was used for other content
// (fingerprint theirs): an original command whose commandId was first used
// for other content, or any command whose commandId already has a contact
// created for other content. It is a failed event whose id is its own (a
// function of the commandId and this content), nothing recorded, nothing
// sent.
func (h *Handler) conflict(d *delivery, theirs string) Decision {
	then := "use a new commandId for a new contact, or replay the first command's failure with a repair to change it"
	if d.rec.ContactFingerprint != "" {
		then = "its contact exists; use a new commandId for a new contact, and discard this failure once it is handled"
	}
	msg := fmt.Sprintf("this commandId was first used at %s for a command with other content "+
		"(fingerprint %s; this command's is %s): nothing was sent to a provider and the first command's outcome stands; %s",
		d.rec.FirstUsed.UTC().Format(time.RFC3339), theirs, d.in.fingerprint, then)
	if theirs == d.rec.ContactFingerprint && theirs != d.rec.Fingerprint {
		msg = fmt.Sprintf("this commandId's contact was created for a command with other content (fingerprint %s; this command's is %s): "+
			"nothing was sent to a provider; use a new commandId for a new contact", theirs, d.in.fingerprint)
	}
	data := contact.Failed{CommandID: d.cmd.CommandID, Reason: contact.ReasonConflict, Message: msg, Metadata: d.cmd.Metadata}
	if d.in.bad == nil {
		data.Provider = d.cmd.Provider
	}
	attachCommand(&data, d.m.Body)
	ev, err := events.NewEvent(h.cfg.Source, contact.SubjectFailed, d.cmd.CommandID, "conflict:"+d.in.fingerprint, h.cfg.Now(), data)
	if err != nil {
		return h.unencodable(d, err)
	}
	return Decision{Action: Term, Event: &ev, EventJSON: ev.AppendJSON(nil), CommandID: d.cmd.CommandID,
		Provider: data.Provider, Reason: contact.ReasonConflict, Err: errors.New("commandId used for other content"),
		Failure: &FailureChange{Open: true, Conflict: true}}
}

func (h *Handler) createdData(d *delivery, c *record.StoredContact, g *record.Generation) contact.Created {
	up := c.Upstream
	if up == nil {
		up = map[string]any{}
	}
	return contact.Created{
		CommandID: d.cmd.CommandID,
		Provider:  c.Provider,
		ContactID: c.ID,
		Upstream:  up,
		Attempts:  g.Attempts,
		ReplayOf:  d.m.Generation,
		Metadata:  d.cmd.Metadata,
	}
}

// attachCommand puts the command into a failed event: the object itself,
// or for a malformed body its raw bytes (events.NewEvent bounds either).
func attachCommand(f *contact.Failed, body []byte) {
	if f.Reason == contact.ReasonMalformed {
		f.CommandRaw = body
		return
	}
	f.Command = body
}

// boundUpstream keeps a provider's identifiers within what a record and
// an event can carry: at most 64 of them, each value's encoding at most
// 1 KiB (a longer one is dropped, and the drop noted).
func boundUpstream(up map[string]any) map[string]any {
	const maxKeys, maxValue = 64, 1 << 10
	if len(up) == 0 || withinBounds(up, maxKeys, maxValue) {
		return up // the common case: nothing to drop, nothing to copy
	}
	out := make(map[string]any, min(len(up), maxKeys))
	dropped := 0
	for _, k := range sortedKeys(up) {
		v := up[k]
		enc, err := json.Marshal(v)
		if len(out) >= maxKeys || len(k) > maxValue || err != nil || len(enc) > maxValue {
			dropped++
			continue
		}
		out[k] = v
	}
	if dropped > 0 {
		out["droppedIdentifiers"] = dropped
	}
	return out
}

// withinBounds reports, without encoding anything, whether every member
// of up is certainly kept by boundUpstream: at most maxKeys of them, each
// key at most maxValue bytes and each value a string, json.Number or bool
// whose encoding cannot pass maxValue bytes (a string's byte escapes at
// most as \u00XX: six bytes, and two quotes), a number only when it is a
// plain integer (encoded as written).
func withinBounds(up map[string]any, maxKeys, maxValue int) bool {
	if len(up) > maxKeys {
		return false
	}
	for k, v := range up {
		if len(k) > maxValue {
			return false
		}
		switch v := v.(type) {
		case string:
			if 6*len(v)+2 > maxValue {
				return false
			}
		case json.Number:
			if len(v) > maxValue || !plainInteger(string(v)) {
				return false // others are left to the encoder to judge
			}
		case bool:
		default:
			return false
		}
	}
	return true
}

// plainInteger reports whether s is -?(0|[1-9][0-9]*), a number
// encoding/json writes as it is.
func plainInteger(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// retryStore ends a delivery whose record could not be read or written.
// Each such delivery counts towards MAX_DELIVER, so the wait doubles with
// every delivery, up to one delivery's full retry schedule: a NATS
// election costs a delivery or two, and the default of ten deliveries
// outlasts some ten minutes without a record store.
func (h *Handler) retryStore(d *delivery, err error) Decision {
	delay := storeRetryDelay << min(max(d.m.Delivery-1, 0), 16)
	delay = min(delay, h.cfg.RetryMaxElapsed+h.cfg.RedeliveryDelay)
	return Decision{Action: Retry, Delay: delay, CommandID: d.cmd.CommandID, Provider: d.cmd.Provider, Attempts: d.attempts(), Err: err}
}
