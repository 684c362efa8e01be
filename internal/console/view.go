package console

import (
	"cmp"
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/redact"
)

// view is the open failures as one load found them, indexed for the
// pages: every listing is answered from it, without reading the store.
// A view is never changed once built; the server swaps in a new one.
type view struct {
	// snap is the load's snapshot, each failure's Message masked as
	// pages show it (redact.String, the text mask of replay.MaskFailed):
	// lists, groups and group links hold no email or phone number.
	snap *failstore.Snapshot
	// err is why the last load failed (failstore.ErrNoStore: the store
	// does not exist yet); snap is then the last good one, if any.
	err error
	// took is how long the load took; at when it began; checked, when
	// later, is when the store was last found unchanged since.
	took    time.Duration
	at      time.Time
	checked time.Time
	// lowerMsg and lowerID are each failure's message (as stored, not
	// masked) and commandId in lower case, for the free-text filter.
	lowerMsg, lowerID []string
	// groupMsg is each failure's masked message with what differs
	// between failures of one cause (times, ids, long numbers) replaced,
	// so that one outage's failures fall into one group.
	groupMsg   []string
	bySeq      map[uint64]int
	byCommand  map[string][]int
	byReason   map[string]int
	byProvider map[string]int
	// hourly counts the open failures by the hour they failed in, over
	// the 24 hours before the load; older ones are in olderThanADay.
	hourly        [24]int
	olderThanADay int
}

func newView(snap *failstore.Snapshot, took time.Duration) *view {
	n := len(snap.Failures)
	v := &view{snap: snap, took: took, at: snap.At,
		lowerMsg: make([]string, n), lowerID: make([]string, n), groupMsg: make([]string, n),
		bySeq: make(map[uint64]int, n), byCommand: make(map[string][]int, n)}
	v.byReason, v.byProvider, _ = snap.Counts()
	start := snap.At.Truncate(time.Hour).Add(-23 * time.Hour)
	normal := map[string][3]string{} // messages repeat: each is worked on once
	for i := range snap.Failures {
		f := &snap.Failures[i]
		m, ok := normal[f.Message]
		if !ok {
			masked := redact.String(f.Message)
			m = [3]string{strings.ToLower(f.Message), groupMessage(masked), masked}
			normal[f.Message] = m
		}
		v.lowerMsg[i], v.groupMsg[i], f.Message = m[0], m[1], m[2]
		v.lowerID[i] = strings.ToLower(f.CommandID)
		v.bySeq[f.Seq] = i
		v.byCommand[f.CommandID] = append(v.byCommand[f.CommandID], i)
		if h := int(f.Time.Sub(start) / time.Hour); f.Time.Before(start) {
			v.olderThanADay++
		} else if h < 24 {
			v.hourly[h]++
		} else {
			v.hourly[23]++ // a clock a little ahead
		}
	}
	return v
}

// query is what a listing, a preview or an action selects: a filter, a
// group within it, or failures picked one by one (Seqs).
type query struct {
	Reasons   []string
	Providers []string
	// SinceText and UntilText are as typed; Since and Until as read.
	SinceText, UntilText string
	Since, Until         time.Time
	Text                 string
	CommandID            string
	// Group, when set, narrows the filter to one group.
	Group *groupKey
	// Seqs, when not empty, selects these failures, the filter aside.
	Seqs []uint64
	// UpTo, when not zero, leaves out failures stored after the preview
	// that showed what an action would do: an action does what it showed.
	UpTo uint64
	// hits are the failures whose command holds Text (findText), which
	// the text filter takes besides its matches in the view.
	hits map[uint64]bool
}

type groupKey struct {
	Reason, Provider, Message string
}

func (q query) empty() bool {
	return len(q.Reasons) == 0 && len(q.Providers) == 0 && q.Since.IsZero() && q.Until.IsZero() &&
		q.Text == "" && q.CommandID == "" && q.Group == nil && len(q.Seqs) == 0
}

// match reports whether the view's i-th failure passes q.
func (v *view) match(q *query, lowerText string, i int) bool {
	f := &v.snap.Failures[i]
	switch {
	case q.UpTo != 0 && f.Seq > q.UpTo:
		return false
	case len(q.Reasons) > 0 && !slices.Contains(q.Reasons, string(f.Reason)):
		return false
	case len(q.Providers) > 0 && !slices.Contains(q.Providers, f.Provider):
		return false
	case !q.Since.IsZero() && f.Time.Before(q.Since):
		return false
	case !q.Until.IsZero() && f.Time.After(q.Until):
		return false
	case q.CommandID != "" && f.CommandID != q.CommandID:
		return false
	case lowerText != "" && !strings.Contains(v.lowerMsg[i], lowerText) && !strings.Contains(v.lowerID[i], lowerText) && !q.hits[f.Seq]:
		return false
	case q.Group != nil && (string(f.Reason) != q.Group.Reason || f.Provider != q.Group.Provider || v.groupMsg[i] != q.Group.Message):
		return false
	}
	return true
}

// selectIdx returns the indexes of the failures q selects, newest first.
func (v *view) selectIdx(q *query) []int {
	if v == nil || v.snap == nil {
		return nil
	}
	if len(q.Seqs) > 0 {
		var out []int
		for _, seq := range q.Seqs {
			if i, ok := v.bySeq[seq]; ok && (q.UpTo == 0 || seq <= q.UpTo) {
				out = append(out, i)
			}
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	if q.CommandID != "" && q.Text == "" {
		var out []int
		for _, i := range v.byCommand[q.CommandID] {
			if v.match(q, "", i) {
				out = append(out, i)
			}
		}
		return out
	}
	lower := strings.ToLower(q.Text)
	out := make([]int, 0, 64)
	for i := range v.snap.Failures {
		if v.match(q, lower, i) {
			out = append(out, i)
		}
	}
	return out
}

// summaries returns the failures at idx.
func (v *view) summaries(idx []int) []failstore.Summary {
	out := make([]failstore.Summary, len(idx))
	for j, i := range idx {
		out[j] = v.snap.Failures[i]
	}
	return out
}

// groups folds the failures at idx into groups of one reason, provider
// and message, the largest first.
func (v *view) groups(idx []int) []failstore.Group {
	pos := map[groupKey]int{}
	var out []failstore.Group
	for _, i := range idx {
		f := &v.snap.Failures[i]
		k := groupKey{string(f.Reason), f.Provider, v.groupMsg[i]}
		j, ok := pos[k]
		if !ok {
			j = len(out)
			pos[k] = j
			out = append(out, failstore.Group{Reason: f.Reason, Provider: f.Provider, Message: k.Message, Newest: f.Time, Oldest: f.Time})
		}
		g := &out[j]
		g.Count++
		if f.Time.After(g.Newest) {
			g.Newest = f.Time
		}
		if f.Time.Before(g.Oldest) {
			g.Oldest = f.Time
		}
	}
	slices.SortStableFunc(out, func(a, b failstore.Group) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return b.Newest.Compare(a.Newest)
	})
	return out
}

// Parts of a message that differ between failures of one cause.
var (
	timestampRE = regexp.MustCompile(`\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?`)
	uuidRE      = regexp.MustCompile(`(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`)
	idRE        = regexp.MustCompile(`[A-Za-z0-9_]{12,}`)
	longNumRE   = regexp.MustCompile(`\d{5,}`)
)

// groupMessage returns a message with its times, ids and long numbers
// replaced by "…", so that failures of one cause share one group: the
// message of a circuit held open "until 12:04:05Z" names a time each.
func groupMessage(m string) string {
	if !strings.ContainsAny(m, "0123456789") {
		return m
	}
	m = timestampRE.ReplaceAllString(m, "…")
	m = uuidRE.ReplaceAllString(m, "…")
	m = idRE.ReplaceAllStringFunc(m, func(s string) string {
		digits := 0
		for _, c := range s {
			if c >= '0' && c <= '9' {
				digits++
			}
		}
		if digits < 4 {
			return s // a long word
		}
		return "…"
	})
	return longNumRE.ReplaceAllString(m, "…")
}

// load reads the open failures into a new view; on an error it keeps the
// last good snapshot and says why.
func (srv *Server) load(ctx context.Context) *view {
	start := time.Now()
	// An unchanged store keeps its view (the hour it was made in, for the
	// trend): with 100,000 open failures a
	// load takes a second or two of reading, a version one request.
	if old := srv.view.Load(); old != nil && old.err == nil && old.snap != nil {
		if ver, err := failstore.CurrentVersion(ctx, srv.cfg.JS); err == nil && ver == old.snap.Version &&
			start.Truncate(time.Hour).Equal(old.at.Truncate(time.Hour)) {
			nv := *old
			nv.checked = start
			srv.view.Store(&nv)
			return &nv
		}
	}
	snap, err := failstore.Load(ctx, srv.cfg.JS, failstore.Select{})
	if err != nil {
		old := srv.view.Load()
		v := &view{err: err, at: start}
		if old != nil && old.snap != nil {
			nv := *old
			nv.err = err
			v = &nv
		}
		if !errors.Is(err, context.Canceled) {
			srv.view.Store(v)
		}
		return v
	}
	v := newView(snap, time.Since(start))
	srv.view.Store(v)
	return v
}

// reasons lists the contract's reasons, for the filter form.
var reasons = []contact.Reason{contact.ReasonExhausted, contact.ReasonInvalid, contact.ReasonRejected, contact.ReasonAmbiguous,
	contact.ReasonUnroutable, contact.ReasonConflict, contact.ReasonMalformed}
