package openfailures

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/redact"
)

// index is what the console keeps of each open failure: what its lists,
// filters, groups and counts need, and nothing else. An entry is 32
// bytes; its strings are interned (reasons, providers, messages: an
// outage's failures share one) or packed into one arena (the commandIds,
// for the text filter and the rows); bodies stay in the store and are
// read for what a page shows. Entries are in the store's order (its
// sequence), the newest last; a closed entry is marked and dropped by the
// next compaction. An index is not safe for concurrent use: its view
// guards it.
type index struct {
	entries []openEntry
	// live counts the entries not closed; last is the newest sequence
	// added.
	live int
	last uint64
	// byReason and byProvider count the open entries by reason and
	// provider id, kept as entries open and close.
	byReason, byProvider []int
	// cmds holds the commandIds, entry by entry.
	cmds []byte
	// own finds a command's own open entry by its commandId (a table of
	// positions in entries, 4 bytes a slot); conflicts find a conflict's
	// entry's sequence by the hash of its subject's last tokens. A newer
	// entry of a command, or of a conflict's subject, closes the older.
	own       slots
	conflicts map[uint64]uint64

	reasons   interner
	providers interner
	// messages are the distinct messages (as stored), msgs what the
	// console needs of each; groups the distinct group messages.
	messages interner
	msgs     []message
	groups   interner
}

// openEntry is one open failure in the index, 32 bytes.
type openEntry struct {
	seq uint64
	// at is the failure's time in Unix nanoseconds (noTime for none).
	at       int64
	cmd      uint32 // offset of the commandId in index.cmds
	msg      uint32 // in index.messages
	cmdLen   uint16
	provider uint16 // in index.providers
	reason   uint8  // in index.reasons
	attempts uint8
	flags    uint8
}

const (
	flagConflict = 1 << iota
	flagRetryable
	flagClosed
)

const noTime = math.MinInt64

// message is what the console needs of a distinct message.
type message struct {
	// lower is the message as stored, in lower case, for the text filter;
	// masked as the pages show it (redact.String); group the id of its
	// group message (groupMessage of masked).
	lower, masked string
	group         uint32
}

// interner numbers distinct strings.
type interner struct {
	ids  map[string]uint32
	strs []string
}

func (in *interner) id(s string) uint32 {
	if id, ok := in.ids[s]; ok {
		return id
	}
	if in.ids == nil {
		in.ids = map[string]uint32{}
	}
	id := uint32(len(in.strs))
	s = strings.Clone(s) // not a slice of a message's headers
	in.ids[s] = id
	in.strs = append(in.strs, s)
	return id
}

// lookup returns s's id, false when s was never seen.
func (in *interner) lookup(s string) (uint32, bool) {
	id, ok := in.ids[s]
	return id, ok
}

func newIndex() *index {
	return &index{conflicts: map[uint64]uint64{}}
}

// sized makes room for n entries, so that a load does not grow them by
// copies.
func (x *index) sized(n int) {
	x.entries = slices.Grow(x.entries, n)
	x.own.resize(x, n)
}

// subjectKey hashes the tokens of an entry's subject after its reason
// and provider.
func subjectKey(subject string) uint64 {
	rest := strings.TrimPrefix(subject, failstore.SubjectPrefix)
	for range 2 {
		if i := strings.IndexByte(rest, '.'); i >= 0 {
			rest = rest[i+1:]
		}
	}
	return hashString(rest)
}

// hashString is FNV-1a, without an allocation.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func hashBytes(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// slots is an open-addressing table (linear probing) of the positions in
// index.entries of the open own entries, by their commandId, which the
// entries hold: 4 bytes a slot, at most half of them used.
type slots struct {
	pos []uint32 // position+1; 0: empty
	n   int
}

func (t *slots) resize(x *index, want int) {
	size := 1024
	for size < 2*want {
		size *= 2
	}
	t.pos, t.n = make([]uint32, size), 0
	for i := range x.entries {
		if e := &x.entries[i]; e.flags&(flagClosed|flagConflict) == 0 {
			t.insert(x, i)
		}
	}
}

func (t *slots) home(x *index, p uint32) int {
	e := &x.entries[p-1]
	return int(hashBytes(x.cmds[e.cmd:e.cmd+uint32(e.cmdLen)]) & uint64(len(t.pos)-1))
}

// find returns the slot of the command's own open entry, -1 for none.
func (t *slots) find(x *index, commandID string) int {
	if t.n == 0 {
		return -1
	}
	mask := len(t.pos) - 1
	for i := int(hashString(commandID)) & mask; t.pos[i] != 0; i = (i + 1) & mask {
		e := &x.entries[t.pos[i]-1]
		if string(x.cmds[e.cmd:e.cmd+uint32(e.cmdLen)]) == commandID {
			return i
		}
	}
	return -1
}

func (t *slots) insert(x *index, position int) {
	if 2*(t.n+1) > len(t.pos) {
		t.resize(x, 2*(t.n+1)) // adds every open own entry, this one too
		return
	}
	mask := len(t.pos) - 1
	i := t.home(x, uint32(position+1))
	for t.pos[i] != 0 {
		i = (i + 1) & mask
	}
	t.pos[i] = uint32(position + 1)
	t.n++
}

// remove empties slot i, moving later entries of its run back.
func (t *slots) remove(x *index, i int) {
	mask := len(t.pos) - 1
	t.pos[i] = 0
	t.n--
	for j := (i + 1) & mask; t.pos[j] != 0; j = (j + 1) & mask {
		k := t.home(x, t.pos[j])
		// Move j to i when its home is not within (i, j].
		if (i <= j && (k <= i || k > j)) || (i > j && k <= i && k > j) {
			t.pos[i], t.pos[j] = t.pos[j], 0
			i = j
		}
	}
}

// add keeps a failure read from the store, closing the entry it replaces
// (the command's older entry, or the older message of its subject). Sums
// must come in the store's order.
func (x *index) add(s *failstore.Summary) {
	if s.Seq <= x.last {
		return // read already
	}
	x.last = s.Seq
	if s.Conflict {
		key := subjectKey(s.Subject)
		if old, ok := x.conflicts[key]; ok {
			x.closeSeq(old)
		}
		x.conflicts[key] = s.Seq
	} else if i := x.own.find(x, s.CommandID); i >= 0 {
		x.closeSeq(x.entries[x.own.pos[i]-1].seq)
	}
	e := openEntry{seq: s.Seq, at: noTime, cmd: uint32(len(x.cmds)),
		reason:   uint8(min(x.reasons.id(string(s.Reason)), math.MaxUint8)),
		provider: uint16(min(x.providers.id(s.Provider), math.MaxUint16)),
		attempts: uint8(min(max(s.Attempts, 0), math.MaxUint8)),
	}
	if !s.Time.IsZero() {
		e.at = s.Time.UnixNano()
	}
	id := s.CommandID
	if len(id) > math.MaxUint16 {
		id = id[:math.MaxUint16]
	}
	x.cmds = append(x.cmds, id...)
	e.cmdLen = uint16(len(id))
	e.msg = x.messages.id(s.Message)
	if int(e.msg) == len(x.msgs) {
		masked := redact.String(s.Message)
		x.msgs = append(x.msgs, message{lower: strings.ToLower(s.Message), masked: masked, group: x.groups.id(groupMessage(masked))})
	}
	if s.Conflict {
		e.flags |= flagConflict
	}
	if s.Retryable {
		e.flags |= flagRetryable
	}
	x.entries = append(x.entries, e)
	x.live++
	x.count(&e, 1)
	if !s.Conflict {
		x.own.insert(x, len(x.entries)-1)
	}
}

// count adds n to the counts of e's reason and provider.
func (x *index) count(e *openEntry, n int) {
	for int(e.reason) >= len(x.byReason) {
		x.byReason = append(x.byReason, 0)
	}
	for int(e.provider) >= len(x.byProvider) {
		x.byProvider = append(x.byProvider, 0)
	}
	x.byReason[e.reason] += n
	x.byProvider[e.provider] += n
}

// find returns the position of the entry of sequence seq, -1 when there
// is none.
func (x *index) find(seq uint64) int {
	i, ok := slices.BinarySearchFunc(x.entries, seq, func(e openEntry, seq uint64) int { return cmp.Compare(e.seq, seq) })
	if !ok {
		return -1
	}
	return i
}

// closeSeq closes the entry of sequence seq, if it is open.
func (x *index) closeSeq(seq uint64) bool {
	i := x.find(seq)
	if i < 0 || x.entries[i].flags&flagClosed != 0 {
		return false
	}
	e := &x.entries[i]
	if e.flags&flagConflict == 0 {
		if j := x.own.find(x, x.commandID(e)); j >= 0 && x.own.pos[j] == uint32(i+1) {
			x.own.remove(x, j)
		}
	} else {
		for k, seq := range x.conflicts {
			if seq == e.seq {
				delete(x.conflicts, k) // conflicts are few
				break
			}
		}
	}
	e.flags |= flagClosed
	x.live--
	x.count(e, -1)
	x.maybeCompact()
	return true
}

// closeCommand closes the command's own entry (a contact.created resolved
// it), if one is open.
func (x *index) closeCommand(commandID string) bool {
	i := x.own.find(x, commandID)
	if i < 0 {
		return false
	}
	return x.closeSeq(x.entries[x.own.pos[i]-1].seq)
}

// maybeCompact drops closed entries once they are a quarter of the index.
func (x *index) maybeCompact() {
	closed := len(x.entries) - x.live
	if closed < 1024 || closed < len(x.entries)/4 {
		return
	}
	cmds := make([]byte, 0, len(x.cmds)-len(x.cmds)*closed/max(len(x.entries), 1)+64)
	out := x.entries[:0]
	for _, e := range x.entries {
		if e.flags&flagClosed != 0 {
			continue
		}
		id := x.cmds[e.cmd : e.cmd+uint32(e.cmdLen)]
		e.cmd = uint32(len(cmds))
		cmds = append(cmds, id...)
		out = append(out, e)
	}
	clear(x.entries[len(out):])
	x.entries = slices.Clip(out)
	if cap(x.entries) > 2*len(x.entries)+1024 {
		x.entries = slices.Clone(x.entries)
	}
	x.cmds = cmds
	x.own.resize(x, x.live) // the positions moved
}

func (x *index) commandID(e *openEntry) string {
	return string(x.cmds[e.cmd : e.cmd+uint32(e.cmdLen)])
}

func (x *index) time(e *openEntry) time.Time {
	if e.at == noTime {
		return time.Time{}
	}
	return time.Unix(0, e.at).UTC()
}

// summary is an entry as a listing shows it: its message masked.
func (x *index) summary(e *openEntry) failstore.Summary {
	return failstore.Summary{
		Seq:       e.seq,
		CommandID: x.commandID(e),
		Reason:    contact.Reason(x.reasons.strs[e.reason]),
		Provider:  x.providers.strs[e.provider],
		Time:      x.time(e),
		Attempts:  int(e.attempts),
		Retryable: e.flags&flagRetryable != 0,
		Message:   x.msgs[e.msg].masked,
		Conflict:  e.flags&flagConflict != 0,
	}
}

// matcher is a query compiled against an index: ids in place of names.
type matcher struct {
	q                *Query
	reasons          []bool // by reason id; nil: any
	providers        []bool // by provider id; nil: any
	since, until     int64
	lowerText        string
	msgText          []bool // by message id: its message holds the text
	group            bool
	groupReason      uint32
	groupProvider    uint32
	groupMessage     uint32
	none             bool
	textSeqs         map[uint64]bool
	textBySearchFunc bool
}

// compile reads q against the index; text, when not nil, is the set of
// sequences a text search (other than the index's own) found for q.Text.
func (x *index) compile(q *Query, text map[uint64]bool) *matcher {
	m := &matcher{q: q, since: math.MinInt64, until: math.MaxInt64}
	if len(q.Reasons) > 0 {
		m.reasons = make([]bool, len(x.reasons.strs))
		for _, r := range q.Reasons {
			if id, ok := x.reasons.lookup(r); ok {
				m.reasons[id] = true
			}
		}
	}
	if len(q.Providers) > 0 {
		m.providers = make([]bool, len(x.providers.strs))
		for _, p := range q.Providers {
			if id, ok := x.providers.lookup(p); ok {
				m.providers[id] = true
			}
		}
	}
	if !q.Since.IsZero() {
		m.since = q.Since.UnixNano()
	}
	if !q.Until.IsZero() {
		m.until = q.Until.UnixNano()
	}
	switch {
	case text != nil:
		m.textSeqs, m.textBySearchFunc = text, true
	case q.Text != "":
		m.lowerText = strings.ToLower(q.Text)
		m.msgText = make([]bool, len(x.msgs))
		for i := range x.msgs {
			m.msgText[i] = strings.Contains(x.msgs[i].lower, m.lowerText)
		}
	}
	if g := q.Group; g != nil {
		m.group = true
		var ok1, ok2, ok3 bool
		m.groupReason, ok1 = x.reasons.lookup(g.Reason)
		m.groupProvider, ok2 = x.providers.lookup(g.Provider)
		m.groupMessage, ok3 = x.groups.lookup(g.Message)
		m.none = !ok1 || !ok2 || !ok3
	}
	return m
}

// match reports whether the open entry e passes m.
func (x *index) match(m *matcher, e *openEntry) bool {
	q := m.q
	switch {
	case m.none:
		return false
	case q.UpTo != 0 && e.seq > q.UpTo:
		return false
	case m.reasons != nil && !m.reasons[e.reason]:
		return false
	case m.providers != nil && !m.providers[e.provider]:
		return false
	case e.at != noTime && (e.at < m.since || e.at > m.until):
		return false
	case e.at == noTime && (m.since != math.MinInt64 || m.until != math.MaxInt64):
		return false
	case m.group && (uint32(e.reason) != m.groupReason || uint32(e.provider) != m.groupProvider || x.msgs[e.msg].group != m.groupMessage):
		return false
	case q.CommandID != "" && string(x.cmds[e.cmd:e.cmd+uint32(e.cmdLen)]) != q.CommandID:
		return false
	case m.textBySearchFunc:
		return m.textSeqs[e.seq]
	case m.lowerText != "" && !m.msgText[e.msg] && !containsFold(x.cmds[e.cmd:e.cmd+uint32(e.cmdLen)], m.lowerText) && !q.Hits[e.seq]:
		return false
	}
	return true
}

// containsFold reports whether s holds lowerSub (in lower case), ignoring
// case, without allocating for ASCII.
func containsFold(s []byte, lowerSub string) bool {
	for _, c := range s {
		if c >= utf8.RuneSelf {
			return strings.Contains(strings.ToLower(string(s)), lowerSub)
		}
	}
	n := len(lowerSub)
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for ; j < n; j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != lowerSub[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}

// each calls fn with the open entries m selects, newest first, until fn
// returns false.
func (x *index) each(m *matcher, fn func(e *openEntry) bool) {
	for i := len(x.entries) - 1; i >= 0; i-- {
		e := &x.entries[i]
		if e.flags&flagClosed == 0 && x.match(m, e) && !fn(e) {
			return
		}
	}
}

// counts returns the open failures' counts by reason and by provider,
// which the index keeps as failures open and close.
func (x *index) counts() (byReason, byProvider map[string]int) {
	byReason, byProvider = map[string]int{}, map[string]int{}
	for id, n := range x.byReason {
		if n > 0 {
			byReason[x.reasons.strs[id]] = n
		}
	}
	for id, n := range x.byProvider {
		if n > 0 {
			byProvider[x.providers.strs[id]] = n
		}
	}
	return byReason, byProvider
}

// groupsOf folds the entries m selects into groups of one reason,
// provider and message, the largest first.
func (x *index) groupsOf(m *matcher) []failstore.Group {
	type acc struct {
		reason, provider, group uint32
		count                   int
		newest, oldest          int64
	}
	pos := map[uint64]int{}
	var accs []acc
	x.each(m, func(e *openEntry) bool {
		g := x.msgs[e.msg].group
		k := uint64(e.reason)<<56 | uint64(e.provider)<<40 | uint64(g)
		j, ok := pos[k]
		if !ok {
			j = len(accs)
			pos[k] = j
			accs = append(accs, acc{reason: uint32(e.reason), provider: uint32(e.provider), group: g, newest: e.at, oldest: e.at})
		}
		a := &accs[j]
		a.count++
		a.newest, a.oldest = max(a.newest, e.at), min(a.oldest, e.at)
		return true
	})
	out := make([]failstore.Group, len(accs))
	for i, a := range accs {
		out[i] = failstore.Group{Reason: contact.Reason(x.reasons.strs[a.reason]), Provider: x.providers.strs[a.provider],
			Message: x.groups.strs[a.group], Count: a.count,
			Newest: x.time(&openEntry{at: a.newest}), Oldest: x.time(&openEntry{at: a.oldest})}
	}
	slices.SortStableFunc(out, func(a, b failstore.Group) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return b.Newest.Compare(a.Newest)
	})
	return out
}

// hourly counts the open failures by the hour they failed in, over the
// 24 hours from start; older ones are counted apart.
func (x *index) hourly(start time.Time) (hours [24]int, older int) {
	from := start.UnixNano()
	for i := range x.entries {
		e := &x.entries[i]
		if e.flags&flagClosed != 0 {
			continue
		}
		switch h := (e.at - from) / int64(time.Hour); {
		case e.at < from:
			older++
		case h < 24:
			hours[h]++
		default:
			hours[23]++ // a clock a little ahead
		}
	}
	return hours, older
}

// bytes estimates what the index holds, for the log.
func (x *index) bytes() int {
	n := cap(x.entries)*32 + cap(x.cmds) + len(x.own.pos)*4 + len(x.conflicts)*24
	for _, m := range x.msgs {
		n += len(m.lower) + len(m.masked) + 48
	}
	return n
}
