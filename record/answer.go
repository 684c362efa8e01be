package record

// NewestOutcome reads a stored record and returns the generation whose
// recorded outcome is the newest, and whether that outcome is a
// contact.created. ok is false when the record cannot be read or holds
// no outcome. The newest outcome's event id is contact.EventID of the
// record's commandId, the generation and the outcome's type.
func NewestOutcome(value []byte) (commandID, generation string, created, ok bool) {
	rec, err := Decode(value)
	if err != nil {
		return "", "", false, false
	}
	name, g := rec.Newest()
	if g == nil {
		return rec.CommandID, "", false, false
	}
	return rec.CommandID, name, g.Reason == "", true
}

// NewestEvent returns, from a stored record, the generation whose recorded
// outcome is the newest and that outcome's event as stored (a failure
// without its command); ok is false when the record cannot be read or
// holds no outcome.
func NewestEvent(value []byte) (generation string, event []byte, ok bool) {
	rec, err := Decode(value)
	if err != nil {
		return "", nil, false
	}
	name, g := rec.Newest()
	if g == nil {
		return "", nil, false
	}
	return name, g.Outcome, true
}

// ResentOutcome returns, from a stored record, the outcome the service
// answers an original command (no Contact-Replay-Of) with when body is
// sent again: the command's newest recorded outcome (the event as stored:
// a failure without its command), when the original generation was
// decided and the content whose ContentFingerprint is fingerprint is that
// of one of the command's generations. ok is false when the record does not answer by
// itself: nothing decided yet, or content no generation had (the service
// answers that with a conflict). It is the rule the service applies
// (Record.Resent), read without publishing.
func ResentOutcome(value []byte, fingerprint string) (event []byte, ok bool) {
	rec, err := Decode(value)
	if err != nil {
		return nil, false
	}
	if _, g, ok := rec.Resent("", fingerprint); ok {
		return g.Outcome, true
	}
	return nil, false
}

// Resent is the rule for a command sent again once its generation gen is
// decided ("one outcome per generation"): when content fp is that of one
// of the command's generations, the answer is the command's newest
// recorded outcome, of whichever generation decided it (name), never a new
// event for gen. ok is false when gen is not decided, or when fp is
// content no generation had (a conflict).
func (r *Record) Resent(gen, fp string) (name string, newest *Generation, ok bool) {
	if !r.Decided(gen) || !r.HadContent(fp) {
		return "", nil, false
	}
	name, newest = r.Newest()
	return name, newest, newest != nil
}

// Decided reports whether generation gen has its outcome: recorded, or,
// for the original generation, given way to newer ones after it was
// decided (the record keeps the fingerprint of the original content, and
// no longer the generation).
func (r *Record) Decided(gen string) bool {
	if g := r.Generations[gen]; g != nil {
		return g.Outcome != nil
	}
	if gen != "" || r.Fingerprint == "" {
		return false
	}
	_, newest := r.Newest()
	return newest != nil
}

// HadContent reports whether fp is the content fingerprint of one of the
// command's generations the record knows: the original's, a replay's, or
// the content its contact was created for.
func (r *Record) HadContent(fp string) bool {
	if fp == "" {
		return false
	}
	if fp == r.Fingerprint || fp == r.ContactFingerprint {
		return true
	}
	for _, g := range r.Generations {
		if g.Fingerprint == fp {
			return true
		}
	}
	return false
}

// ContentOf returns the content fingerprint of generation gen, or "" when
// the record does not know it.
func (r *Record) ContentOf(gen string) string {
	if gen == "" {
		return r.Fingerprint
	}
	if g := r.Generations[gen]; g != nil {
		return g.Fingerprint
	}
	return ""
}

// Newest returns the generation with the newest recorded outcome (the
// highest Order among those with an Outcome), and its name; nil when no
// generation has an outcome.
func (r *Record) Newest() (string, *Generation) {
	var (
		name   string
		newest *Generation
	)
	for n, g := range r.Generations {
		if g.Outcome != nil && (newest == nil || g.Order > newest.Order) {
			name, newest = n, g
		}
	}
	return name, newest
}

// HasFailure reports whether any generation's recorded outcome is a
// failure: only then can the command have an open failure to resolve.
func (r *Record) HasFailure() bool {
	for _, g := range r.Generations {
		if g.Outcome != nil && g.Reason != "" {
			return true
		}
	}
	return false
}
