package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/audit"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/openfailures"
	"github.com/contactrelay/contactrelay/internal/redact"
	"github.com/contactrelay/contactrelay/internal/replay"
	"github.com/contactrelay/contactrelay/record"
)

func (srv *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if sessionOf(r).authed() {
		http.Redirect(w, r, localPath(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	srv.render(w, r, http.StatusOK, "login", "Sign in", "", map[string]string{"Next": localPath(r.URL.Query().Get("next"))})
}

func (srv *Server) login(w http.ResponseWriter, r *http.Request) {
	user, password := r.PostFormValue("user"), r.PostFormValue("password")
	next := localPath(r.PostFormValue("next"))
	if srv.cfg.NoAuth {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	addr := srv.accounts.clientAddr(r)
	if wait := srv.throttle.wait(user, addr); wait > 0 {
		secs := int(wait.Seconds() + 0.999)
		srv.cfg.Log.Warn("console: sign-in refused unchecked: too many wrong ones", "from", addr, "retryAfter", secs)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		srv.render(w, r, http.StatusTooManyRequests, "login", "Sign in", "", map[string]string{"Next": next,
			"Error": fmt.Sprintf("too many wrong sign-ins from this address; try again in %d %s", secs, plural(secs, "second", "seconds"))})
		return
	}
	// A bounded number of password checks at once (bcrypt costs CPU);
	// the others wait their turn, or their request's end.
	select {
	case srv.checking <- struct{}{}:
	case <-r.Context().Done():
		return
	}
	ok := srv.accounts.check(user, password)
	<-srv.checking
	if !ok {
		srv.throttle.wrong(user, addr)
		srv.cfg.Log.Warn("console: sign-in refused", "from", addr)
		srv.render(w, r, http.StatusUnauthorized, "login", "Sign in", "", map[string]string{"Next": next, "Error": "wrong user or password"})
		return
	}
	srv.throttle.right(user, addr)
	srv.sessions.issue(w, r, user) // a new session: the signed-out one's token is no more
	srv.cfg.Log.Info("console: signed in", "user", user, "from", addr)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (srv *Server) logout(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r)
	if err := srv.sessions.revoke(r.Context(), s); err != nil {
		// Signed out here, not yet everywhere: say so rather than let
		// the user believe the session is over on every replica.
		srv.cfg.Log.Error("console: sign-out not shared", "user", s.User, "err", err)
		srv.fail(w, r, http.StatusServiceUnavailable, "You are signed out of this console, but the sign-out could not be shared with the others ("+err.Error()+"): sign out again shortly.")
		return
	}
	srv.cfg.Log.Info("console: signed out", "user", s.User, "remote", r.RemoteAddr)
	srv.sessions.issue(w, r, "")
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// count is one line of a breakdown.
type count struct {
	Name  string
	Count int
	// Values selects its failures on the failures page.
	Values url.Values
}

func breakdown(m map[string]int, param string) []count {
	out := make([]count, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, count{Name: k, Count: m[k], Values: url.Values{param: {k}}})
	}
	slices.SortStableFunc(out, func(a, b count) int { return b.Count - a.Count })
	return out
}

type overview struct {
	Open       int
	ByReason   []count
	ByProvider []count
	Groups     []failstore.Group
	Stats      *stats
	Trend      chart
	OpenTrend  chart
	Older      int
}

func (srv *Server) overviewPage(w http.ResponseWriter, r *http.Request) {
	v := srv.current()
	data := overview{Stats: srv.stats.Load()}
	if _, _, ready := viewState(v); ready {
		start := srv.cfg.Now().Truncate(time.Hour).Add(-23 * time.Hour)
		o := v.Overview(start)
		data.Open = o.Open
		data.ByReason = breakdown(o.ByReason, "reason")
		data.ByProvider = breakdown(o.ByProvider, "provider")
		data.Groups = o.Groups
		if len(data.Groups) > 5 {
			data.Groups = data.Groups[:5]
		}
		var hourly [24]uint64
		for i, n := range o.Hours {
			hourly[i] = uint64(n)
		}
		data.OpenTrend = barChart(hourly, start, "open failure", "open failures")
		data.Older = o.Older
	}
	if data.Stats != nil {
		data.Trend = barChart(data.Stats.FailedHourly, data.Stats.HourStart, "contact.failed event", "contact.failed events")
	}
	srv.render(w, r, http.StatusOK, "overview", "Overview", "overview", data)
}

// viewState is v.State, for a view that may not be there yet.
func viewState(v *openfailures.View) (time.Time, error, bool) {
	if v == nil {
		return time.Time{}, nil, false
	}
	return v.State()
}

type failuresData struct {
	Q         query
	Values    url.Values
	Errors    []string
	Total     int
	Matched   int
	Rows      []failstore.Summary
	Groups    []failstore.Group
	GroupView bool
	Page      int
	Pages     int
	From, To  int
	UpTo      uint64
	Reasons   []contact.Reason
	Providers []string
	// Took is how long the page took to select, in milliseconds.
	Took string
	// TextNote says how the text filter looked the text up (findText).
	TextNote string
}

func (srv *Server) failuresPage(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	form := r.URL.Query()
	q, errs := parseQuery(form, srv.cfg.Now())
	q.Seqs = nil
	textNote := srv.findText(r.Context(), &q)
	v := srv.current()
	data := failuresData{Q: q, Values: q.values(), Errors: errs, Reasons: reasons, GroupView: form.Get("view") == "groups", TextNote: textNote}
	data.Providers = []string{"instantpay", "pik"}
	size := srv.cfg.PageSize
	data.Page, _ = strconv.Atoi(form.Get("page"))
	data.Page = max(data.Page, 1)
	if _, _, ready := viewState(v); ready {
		data.Total = v.Open()
		data.UpTo = v.UpTo()
		data.Providers = v.Providers(data.Providers)
		text := srv.textSeqs(r.Context(), &q)
		if data.GroupView {
			data.Groups, data.Matched = v.Groups(&q.Query, text)
		} else {
			lo := (data.Page - 1) * size
			data.Rows, data.Matched = v.Page(&q.Query, text, lo, lo+size)
			data.Pages = max(1, (data.Matched+size-1)/size)
			if data.Page > data.Pages {
				data.Page = data.Pages
				lo = (data.Page - 1) * size
				data.Rows, data.Matched = v.Page(&q.Query, text, lo, lo+size)
			}
			data.From, data.To = lo+1, lo+len(data.Rows)
		}
	} else if v != nil && !data.GroupView && data.Page == 1 {
		// While the first load reads the store, the first page of what
		// the server can select comes from the store itself.
		if err := srv.storePage(r.Context(), &q, &data); err != nil && !errors.Is(err, failstore.ErrNoStore) {
			data.Errors = append(data.Errors, err.Error()) // no store: the banner says so
		}
	}
	data.Took = strconv.FormatFloat(float64(time.Since(start).Microseconds())/1000, 'f', 1, 64)
	srv.render(w, r, http.StatusOK, "failures", "Failures", "failures", data)
}

// storePage fills the failures page's first page from the store
// (failstore.LoadPage, and its counts from the server), for a filter the
// server selects by, while the console's index is being read.
func (srv *Server) storePage(ctx context.Context, q *query, data *failuresData) error {
	sel := failstore.Select{Providers: q.Providers}
	for _, r := range q.Reasons {
		sel.Reasons = append(sel.Reasons, contact.Reason(r))
	}
	if !sel.Paged() || !q.empty() && (q.Group != nil || q.Text != "" || q.CommandID != "" || !q.Since.IsZero() || !q.Until.IsZero()) {
		return errors.New("this filter answers once the open failures are read; the first page of every failure, or of a reason or a provider, answers now")
	}
	page, err := failstore.LoadPage(ctx, srv.cfg.JS, sel, srv.cfg.PageSize, 0)
	if err != nil {
		return err
	}
	total, err := failstore.Count(ctx, srv.cfg.JS, failstore.Select{})
	if err != nil {
		return err
	}
	matched := total
	if len(sel.Reasons) > 0 || len(sel.Providers) > 0 {
		if matched, err = failstore.Count(ctx, srv.cfg.JS, sel); err != nil {
			return err
		}
	}
	for _, n := range total {
		data.Total += n
	}
	for _, n := range matched {
		data.Matched += n
	}
	for _, f := range page.Failures {
		f.Message = redact.String(f.Message)
		data.Rows = append(data.Rows, f)
	}
	data.Page, data.Pages = 1, 1
	data.From, data.To = 1, len(data.Rows)
	return nil
}

// generation is one generation of a command, as its record tells it.
type generation struct {
	Name     string
	Order    int
	Attempts int
	Type     string
	Reason   contact.Reason
	Provider string
	Message  string
	EventID  string
	Time     time.Time
	Open     bool
}

type failureDetail struct {
	failstore.Summary
	Data     contact.Failed
	Event    string
	Command  string
	Upstream *contact.Upstream
	Next     []string
	// Broken are the broken rules, each with the value that broke it.
	Broken []brokenRule
}

// brokenRule is a broken rule and the value of its field in the command,
// shown whole even when the page masks the command: it is what a repair
// needs, so showing it is not an unmask action (the other fields stay
// masked).
type brokenRule struct {
	contact.FieldError
	// Value is the field's value (a string as it is, anything else as
	// JSON, at most maxBrokenValue runes); Missing that the command has
	// no such field.
	Value   string
	Missing bool
}

// maxBrokenValue bounds the value shown for a broken rule.
const maxBrokenValue = 200

type failureData struct {
	CommandID   string
	Failures    []failureDetail
	Generations []generation
	Contact     *record.StoredContact
	// Answers are the provider's answers to the command's last failed
	// calls (at most record.MaxAnswers), newest first.
	Answers   []record.Answer
	RecordErr string
	Unmasked  bool
	// Resolved is set when open failures were left out because the
	// record's newest outcome is a contact.created.
	Resolved bool
	Flash    string
	// Refusal says why an action asked for on this page did not happen.
	Refusal string
	// History is the command's audited actions, newest first (Audited:
	// there is an audit trail); HistoryPartial says older entries were
	// not read; HistoryErr why it could not be read.
	Audited        bool
	History        []audit.Entry
	HistoryPartial bool
	HistoryErr     string
}

func (srv *Server) failurePage(w http.ResponseWriter, r *http.Request) {
	srv.showFailure(w, r, r.URL.Query().Get("id"), false, "", "")
}

// showFailure shows a command's open failures, whole, and its generations,
// with flash saying what an action did, or refusal why it did not happen
// (answered 409 Conflict).
func (srv *Server) showFailure(w http.ResponseWriter, r *http.Request, id string, unmasked bool, flash, refusal string) {
	if id == "" {
		srv.fail(w, r, http.StatusBadRequest, "which command? The page needs ?id=<commandId>.")
		return
	}
	data := failureData{CommandID: id, Unmasked: unmasked, Flash: flash, Refusal: refusal}
	whole, err := srv.openOf(r.Context(), id)
	if err != nil {
		srv.fail(w, r, http.StatusBadGateway, "the open failure could not be read: "+err.Error())
		return
	}
	data.Generations, data.Contact, data.Answers, err = srv.generations(r.Context(), id, unmasked)
	if err != nil {
		data.RecordErr = err.Error()
	}
	created := newestCreated(data.Generations)
	for _, f := range whole {
		if created && !f.Conflict {
			// The record, read after the open failures, says a later
			// generation created the contact: the store has yet to catch
			// up (the service resolves it right after recording).
			data.Resolved = true
			continue
		}
		data.Failures = append(data.Failures, detailOf(f, unmasked))
	}
	for i := range data.Generations {
		for _, f := range whole {
			if f.EventID == data.Generations[i].EventID {
				data.Generations[i].Open = true
			}
		}
	}
	if srv.cfg.Audit != nil {
		data.Audited = true
		p, err := audit.List(r.Context(), srv.cfg.JS, audit.Query{CommandID: id, Limit: 20, MaxScan: auditScan})
		data.History, data.HistoryPartial = p.Entries, p.Partial
		if err != nil {
			data.HistoryErr = err.Error()
		}
	}
	status := http.StatusOK
	switch {
	case refusal != "":
		status = http.StatusConflict
	case len(data.Failures) == 0 && len(data.Generations) == 0:
		status = http.StatusNotFound
	}
	srv.render(w, r, status, "failure", "Failure "+id, "failures", data)
}

// openOf reads a command's open failures whole: its own first, then its
// conflicts'.
func (srv *Server) openOf(ctx context.Context, id string) ([]*failstore.Failure, error) {
	snap, err := failstore.Load(ctx, srv.cfg.JS, failstore.Select{CommandID: id})
	if errors.Is(err, failstore.ErrNoStore) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sums := snap.Failures
	slices.SortStableFunc(sums, func(a, b failstore.Summary) int {
		switch {
		case a.Conflict == b.Conflict:
			return 0
		case b.Conflict:
			return -1
		}
		return 1
	})
	return failstore.Get(ctx, srv.cfg.JS, sums)
}

// detailOf is a failure as its page shows it: everything from its data
// masked (replay.MaskFailed) unless unmasked, the event included.
func detailOf(f *failstore.Failure, unmasked bool) failureDetail {
	data := f.Data
	if !unmasked {
		data = replay.MaskFailed(data)
	}
	d := failureDetail{Summary: f.Summary, Data: data, Upstream: data.Upstream, Next: nextSteps(f)}
	d.Broken = brokenRules(data.Errors, f.Data.Command)
	d.Summary.Message = data.Message
	switch {
	case len(data.Command) == 0 && len(data.CommandRaw) > 0:
		d.Command = string(data.CommandRaw)
	case len(data.Command) > 0:
		d.Command = indentJSON(data.Command)
	}
	shown := data
	shown.Command, shown.CommandRaw = nil, nil
	env := f.Event
	env.Data, _ = json.Marshal(shown)
	d.Event = indentJSON(mustJSON(env))
	return d
}

// brokenRules pairs each broken rule with its field's value in command
// (the command as sent, unmasked). A field path is "email",
// "pik.firstName" or "metadata[key]".
func brokenRules(errs []contact.FieldError, command json.RawMessage) []brokenRule {
	if len(errs) == 0 {
		return nil
	}
	var doc map[string]any
	d := json.NewDecoder(bytes.NewReader(command))
	d.UseNumber()
	_ = d.Decode(&doc) // a command that is no object has no values to show
	out := make([]brokenRule, len(errs))
	for i, fe := range errs {
		out[i].FieldError = fe
		v, ok := fieldValue(doc, fe.Field)
		switch {
		case !ok:
			out[i].Missing = true
		default:
			s, isString := v.(string)
			if !isString {
				s = string(mustJSON(v))
			}
			if r := []rune(s); len(r) > maxBrokenValue {
				s = string(r[:maxBrokenValue]) + "…"
			}
			out[i].Value = s
		}
	}
	return out
}

// fieldValue finds a field's value by its path in a decoded command.
func fieldValue(doc map[string]any, path string) (any, bool) {
	var cur any = doc
	for _, part := range strings.Split(path, ".") {
		key := ""
		if i := strings.IndexByte(part, '['); i >= 0 && strings.HasSuffix(part, "]") {
			part, key = part[:i], part[i+1:len(part)-1]
		}
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
		if key != "" {
			if m, ok = cur.(map[string]any); !ok {
				return nil, false
			}
			if cur, ok = m[key]; !ok {
				return nil, false
			}
		}
	}
	return cur, true
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v) // an event always encodes
	return b
}

// indentJSON indents JSON for reading, with <, > and & as they are: the
// template escapes the text, and a reader should see what the command
// holds, not \u003c.
func indentJSON(raw []byte) string {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return string(raw)
	}
	return unescapeHTMLJSON(b.String())
}

// unescapeHTMLJSON undoes encoding/json's escaping of <, > and & (and of
// U+2028, U+2029, which stay escaped).
func unescapeHTMLJSON(s string) string {
	return strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(s)
}

// nextSteps says what to do about a failure, by its reason.
func nextSteps(f *failstore.Failure) []string {
	switch f.Data.Reason {
	case contact.ReasonExhausted:
		return []string{"The provider did not answer in time or kept failing. Check that it answers again (its last answer is above), then replay: the command is sent unchanged as a new generation."}
	case contact.ReasonInvalid:
		return []string{"The command breaks the contract's rules listed above. Repair the fields and send it: the repair is checked with the service's rules before anything is sent.",
			"If the data cannot be mended here, fix it at its source and discard this failure."}
	case contact.ReasonRejected:
		return []string{"The provider refused the command (its answer is above). If the data was wrong, repair and send it; a replay unchanged would be refused again.",
			"If the provider will never accept it, discard this failure."}
	case contact.ReasonAmbiguous:
		return []string{"The contact may exist at the provider: a create call's answer was lost and the lookup could not prove it absent. Check the provider first.",
			"If it does not exist, replay with 'not retryable too'; if it does, discard this failure."}
	case contact.ReasonUnroutable:
		return []string{"No enabled provider could take the command. Repair its provider field (or enable the provider) and send it."}
	case contact.ReasonConflict:
		return []string{"The commandId was used before for a command with other content; nothing was sent to a provider and the first command's outcome stands.",
			"Publish the new content under a new commandId if it is meant, then discard this failure."}
	case contact.ReasonMalformed:
		return []string{"The body was not a command (not JSON, or not an object): nothing can be replayed. Fix the publisher, then discard this failure."}
	}
	return []string{"Read the message above; replay, repair or discard."}
}

// generations reads a command's generations from its idempotency record,
// the oldest first, and its contact if it exists; a failed generation's
// message is masked (replay.MaskFailed) unless unmasked.
// newestCreated reports whether the newest decided generation created the
// contact.
func newestCreated(gens []generation) bool {
	newest := -1
	for i, g := range gens {
		if g.Type != "undecided" && (newest < 0 || g.Order > gens[newest].Order) {
			newest = i
		}
	}
	return newest >= 0 && gens[newest].Type == contact.SubjectCreated
}

func (srv *Server) generations(ctx context.Context, id string, unmasked bool) ([]generation, *record.StoredContact, []record.Answer, error) {
	records, err := record.OpenReader(ctx, srv.cfg.JS)
	if err != nil {
		return nil, nil, nil, err
	}
	value, rev, err := records.Get(ctx, record.Key(id))
	if err != nil || rev == 0 {
		return nil, nil, nil, err
	}
	rec, err := record.Decode(value)
	if err != nil {
		return nil, nil, nil, err
	}
	var out []generation
	for name, g := range rec.Generations {
		gen := generation{Name: name, Order: g.Order, Attempts: g.Attempts, Reason: g.Reason, Provider: g.Provider, Type: "undecided"}
		var ev contact.Event
		if len(g.Outcome) > 0 && json.Unmarshal(g.Outcome, &ev) == nil {
			gen.Type, gen.EventID, gen.Time = ev.Type, ev.ID, ev.Time
			var fd contact.Failed
			if ev.Type == contact.SubjectFailed && json.Unmarshal(ev.Data, &fd) == nil {
				if !unmasked {
					fd = replay.MaskFailed(fd)
				}
				gen.Message = fd.Message
			}
		}
		out = append(out, gen)
	}
	slices.SortFunc(out, func(a, b generation) int { return a.Order - b.Order })
	answers := slices.Clone(rec.Answers)
	slices.Reverse(answers) // newest first
	if !unmasked {
		// A provider's message may echo the contact's email or mobile.
		for i := range answers {
			answers[i].Upstream.Message = redact.String(answers[i].Upstream.Message)
		}
	}
	return out, rec.Contact, answers, nil
}
