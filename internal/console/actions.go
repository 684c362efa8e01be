package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/audit"
	"github.com/contactrelay/contactrelay/internal/failstore"
	jobrun "github.com/contactrelay/contactrelay/internal/jobs"
	"github.com/contactrelay/contactrelay/internal/openfailures"
	"github.com/contactrelay/contactrelay/internal/replay"
)

// maxWhole is the most open failures an action lists, and its replay
// preview reads whole, to say what it would do; a larger selection of a
// filter a job runs (jobFilter) is counted from the console's index
// instead, and the job walks the store a page at a time: no request holds
// a million.
const maxWhole = 1000

// resolve returns the open failures a selection names, from the current
// view: nothing for an empty selection, which no action takes as "all".
// When the selection is a filter a job runs and holds more than maxWhole,
// it lists none of them: sums is nil, and t counts them (counted).
func (srv *Server) resolve(r *http.Request) (q query, sums []failstore.Summary, t openfailures.Tally, counted bool, errs []string) {
	form := r.URL.Query()
	if r.Method == http.MethodPost {
		form = r.PostForm
	}
	q, errs = parseQuery(form, srv.cfg.Now())
	v := srv.current()
	if _, _, ready := viewState(v); !ready {
		return q, nil, t, false, append(errs, "the open failures have not been read yet")
	}
	if q.empty() && form.Get("everything") != "1" {
		return q, nil, t, false, append(errs, "nothing was selected: pick failures, a filter or a group")
	}
	srv.findText(r.Context(), &q)
	text := srv.textSeqs(r.Context(), &q)
	if _, ok := jobFilter(q); ok {
		if t = v.Tally(&q.Query, text, 0); t.N > maxWhole {
			return q, nil, t, true, errs
		}
	}
	sums = v.Selected(&q.Query, text)
	return q, sums, openfailures.Tally{N: len(sums)}, false, errs
}

// skipped is a failure a replay leaves out, and why.
type skipped struct {
	CommandID string
	Why       string
}

type replayPreview struct {
	Q        query
	Hidden   [][2]string
	What     string
	Selected int
	Send     int
	Skipped  []count
	Examples []skipped
	All      bool
	Rate     float64
	MaxRate  int
	// Counted says the selection was counted from the index, not read
	// whole (more than maxWhole: a job replays it).
	Counted bool
	// AllHref previews the selection with not retryable failures too.
	AllHref string
	Errors  []string
}

// hidden writes a selection as hidden fields of a confirmation form.
func hidden(q query) [][2]string {
	var out [][2]string
	v := q.values()
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range v {
			if !yield(k) {
				return
			}
		}
	}) {
		for _, x := range v[k] {
			out = append(out, [2]string{k, x})
		}
	}
	return out
}

// replayPreview shows what a replay of the selection would do, by a dry
// run of the one replay implementation, and asks for confirmation.
func (srv *Server) replayPreview(w http.ResponseWriter, r *http.Request) {
	q, sums, t, counted, errs := srv.resolve(r)
	all := r.URL.Query().Get("all") == "1"
	if v := srv.current(); v != nil && q.UpTo == 0 {
		q.UpTo = v.UpTo()
	}
	data := replayPreview{Q: q, What: q.describe(), Selected: t.N, All: all, Rate: srv.cfg.Rate, MaxRate: MaxRate, Errors: errs, Counted: counted}
	if counted {
		// Counted from the index: what the job will skip, by the same
		// rules (a malformed failure has no command; a failure that is
		// not retryable waits for --all or a repair).
		reasons := map[string]int{}
		if t.Malformed > 0 {
			reasons[string(replay.SkipMalformed)] = t.Malformed
		}
		if t.NotRetryable > 0 && !all {
			reasons[string(replay.SkipNotRetryable)] = t.NotRetryable
		}
		data.Send = t.N - t.Malformed
		if !all {
			data.Send -= t.NotRetryable
		}
		data.Skipped = breakdown(reasons, "")
	}
	if len(sums) > 0 {
		whole, err := failstore.Get(r.Context(), srv.cfg.JS, sums)
		if err != nil {
			srv.fail(w, r, http.StatusBadGateway, "the failures could not be read: "+err.Error())
			return
		}
		reasons := map[string]int{}
		sum, err := replay.Replay(r.Context(), srv.cfg.JS, replay.FromOpen(whole), replay.Options{
			All: all, DryRun: true, Validator: srv.validator,
			OnItem: func(it replay.Item) {
				if it.Skip != "" && len(data.Examples) < 20 {
					data.Examples = append(data.Examples, skipped{it.Failure.CommandID(), string(it.Skip)})
				}
			},
		})
		if err != nil {
			srv.fail(w, r, http.StatusInternalServerError, "the preview failed: "+err.Error())
			return
		}
		for k, n := range sum.Skipped {
			reasons[string(k)] = n
		}
		data.Selected = sum.Selected
		data.Send = sum.Replayed
		data.Skipped = breakdown(reasons, "")
	}
	data.Hidden = hidden(q)
	allValues := q.values()
	allValues.Set("all", "1")
	data.AllHref = "/replay?" + allValues.Encode()
	srv.render(w, r, http.StatusOK, "replay", "Replay", "failures", data)
}

// startReplay starts the replay the preview showed, and sends the browser
// to its progress page.
func (srv *Server) startReplay(w http.ResponseWriter, r *http.Request) {
	q, sums, t, _, errs := srv.resolve(r)
	if t.N == 0 {
		srv.fail(w, r, http.StatusBadRequest, "nothing to replay: "+strings.Join(append(errs, "the selection holds no open failure (any longer)"), "; "))
		return
	}
	rate, err := strconv.ParseFloat(r.PostFormValue("rate"), 64)
	if err != nil || rate <= 0 || rate > MaxRate {
		srv.fail(w, r, http.StatusBadRequest, fmt.Sprintf("the pace must be from 1 to %d commands a second, not %q", MaxRate, r.PostFormValue("rate")))
		return
	}
	all := r.PostFormValue("all") == "1"
	j := &job{User: sessionOf(r).User, What: q.describe(), Rate: rate}
	if all {
		j.What += ", not retryable too"
	}
	seq, ok := srv.audit(w, r, audit.Entry{Action: audit.ActionReplay, CommandIDs: commandIDs(sums), Filter: j.What, Count: t.N,
		Range: selectionRange(q), Detail: fmt.Sprintf("%g a second", rate)})
	if !ok {
		return
	}
	srv.runMu.Lock()
	parent := srv.runCtx
	srv.runMu.Unlock()
	if flt, ok := jobFilter(q); ok {
		id, err := srv.startShared(r.Context(), parent, jobrun.Spec{Kind: jobrun.KindReplay, Filter: flt, Described: q.describe(),
			All: all, Rate: rate, User: j.User, From: "console", UpTo: q.UpTo}, seq)
		if err != nil {
			srv.recordAs(j.User, seq, "replay", j.What, t.N, "not started: "+err.Error(), false)
			srv.fail(w, r, http.StatusBadGateway, "the replay could not be started: "+err.Error())
			return
		}
		http.Redirect(w, r, "/jobs/"+id, http.StatusSeeOther)
		return
	}
	srv.jobs.start(parent, j, func(ctx context.Context, j *job) {
		j.update(func(st *jobState) { st.Total = len(sums) })
		whole, err := failstore.Get(ctx, srv.cfg.JS, sums)
		var sum replay.Summary
		if err == nil {
			j.update(func(st *jobState) { st.Total = len(whole) })
			sum, err = replay.Replay(ctx, srv.cfg.JS, replay.FromOpen(whole), replay.Options{
				All: all, Rate: rate, Validator: srv.validator,
				Progress: j.progress,
				OnItem: func(it replay.Item) {
					var problem string
					switch {
					case it.Err != nil:
						problem = it.Err.Error()
					case it.Refused:
						problem = "not sent: it " + it.Earlier.What() + ", and that command's outcome stands"
					}
					if problem != "" {
						j.update(func(st *jobState) {
							if len(st.Errors) < 20 {
								st.Errors = append(st.Errors, it.Failure.CommandID()+": "+problem)
							}
						})
					}
				},
			})
		}
		srv.Reload()
		j.update(func(st *jobState) {
			st.Over, st.Finished = true, time.Now()
			switch {
			case errors.Is(err, context.Canceled):
				st.Phase, st.Error = "cancelled", "cancelled before it finished"
			case err != nil:
				st.Phase, st.Error = "failed", err.Error()
			default:
				st.Phase = "done"
			}
		})
		result := fmt.Sprintf("%d replayed, %d already sent, %d refused, %d skipped, %d failed to publish, %d not attempted",
			sum.Replayed, sum.AlreadySent, sum.Refused, sum.SkippedTotal(), sum.PublishFailed, sum.NotAttempted)
		if err != nil {
			result += ": " + err.Error()
		}
		srv.recordAs(j.User, seq, "replay", j.What, len(sums), result, err == nil && sum.PublishFailed == 0 && sum.Refused == 0)
	})
	http.Redirect(w, r, "/jobs/"+j.ID, http.StatusSeeOther)
}

func (srv *Server) jobPage(w http.ResponseWriter, r *http.Request) {
	j, snap := srv.jobSnapshot(r.Context(), r.PathValue("id"))
	if j == nil {
		srv.fail(w, r, http.StatusNotFound, "no such replay (the console keeps its last 100 finished replays of picked failures until it restarts, and a replay by filter a week after it finished; its log has every action)")
		return
	}
	srv.render(w, r, http.StatusOK, "job", "Replay", "failures", struct {
		Job   *job
		State jobState
	}{j, snap()})
}

// jobEvents streams a job's progress as server-sent events, one a quarter
// second while it changes, until it is over.
func (srv *Server) jobEvents(w http.ResponseWriter, r *http.Request) {
	j, snap := srv.jobSnapshot(r.Context(), r.PathValue("id"))
	if j == nil {
		http.Error(w, "no such replay", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	rc := http.NewResponseController(w)
	var last []byte
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		st := snap()
		b, _ := json.Marshal(st)
		if string(b) != string(last) {
			if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
			last = b
		}
		if st.Over {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}

func (srv *Server) cancelJob(w http.ResponseWriter, r *http.Request) {
	j, _ := srv.jobSnapshot(r.Context(), r.PathValue("id"))
	if j == nil {
		srv.fail(w, r, http.StatusNotFound, "no such replay")
		return
	}
	seq, ok := srv.audit(w, r, audit.Entry{Action: audit.ActionCancelReplay, Filter: j.What, Detail: "replay " + j.ID})
	if !ok {
		return
	}
	if j.cancel != nil {
		j.cancel()
	} else if rn, err := srv.jobRunner(r.Context(), false); err == nil {
		// A shared job: its owner, on whichever replica, stops at its
		// next save.
		if _, err := rn.Store.Stop(r.Context(), j.ID); err != nil && !errors.Is(err, jobrun.ErrFinished) {
			srv.record(r, seq, "cancel replay", j.What, 0, "not stopped: "+err.Error(), false)
			srv.fail(w, r, http.StatusBadGateway, "the replay could not be stopped: "+err.Error())
			return
		}
	}
	srv.record(r, seq, "cancel replay", j.What, 0, "cancelled", true)
	http.Redirect(w, r, "/jobs/"+j.ID, http.StatusSeeOther)
}

type discardData struct {
	What     string
	Selected int
	Hidden   [][2]string
	Errors   []string
	ByReason []count
}

func (srv *Server) discardPreview(w http.ResponseWriter, r *http.Request) {
	q, sums, t, counted, errs := srv.resolve(r)
	if v := srv.current(); v != nil && q.UpTo == 0 {
		q.UpTo = v.UpTo()
	}
	by := t.ByReason
	if !counted {
		by = map[string]int{}
		for _, s := range sums {
			by[string(s.Reason)]++
		}
	}
	srv.render(w, r, http.StatusOK, "discard", "Discard", "failures", discardData{
		What: q.describe(), Selected: t.N, Hidden: hidden(q), Errors: errs, ByReason: breakdown(by, "reason")})
}

func (srv *Server) discard(w http.ResponseWriter, r *http.Request) {
	q, sums, t, _, errs := srv.resolve(r)
	if t.N == 0 {
		srv.fail(w, r, http.StatusBadRequest, "nothing to discard: "+strings.Join(append(errs, "the selection holds no open failure (any longer)"), "; "))
		return
	}
	seq, ok := srv.audit(w, r, audit.Entry{Action: audit.ActionDiscard, CommandIDs: commandIDs(sums), Filter: q.describe(), Count: t.N, Range: selectionRange(q)})
	if !ok {
		return
	}
	if flt, ok := jobFilter(q); ok {
		// A discard by filter is a shared job, as a replay is: a page at
		// a time, resumed by another replica if this one stops.
		srv.runMu.Lock()
		parent := srv.runCtx
		srv.runMu.Unlock()
		user := sessionOf(r).User
		id, err := srv.startShared(r.Context(), parent, jobrun.Spec{Kind: jobrun.KindDiscard, Filter: flt, Described: q.describe(),
			User: user, From: "console", UpTo: q.UpTo}, seq)
		if err != nil {
			srv.recordAs(user, seq, "discard", q.describe(), t.N, "not started: "+err.Error(), false)
			srv.fail(w, r, http.StatusBadGateway, "the discard could not be started: "+err.Error())
			return
		}
		http.Redirect(w, r, "/jobs/"+id, http.StatusSeeOther)
		return
	}
	n, err := failstore.Discard(r.Context(), srv.cfg.JS, sums)
	srv.follow.Forget(sums)
	srv.Reload()
	result := fmt.Sprintf("%d of %d discarded", n, len(sums))
	if err != nil {
		result += ": " + err.Error()
	}
	srv.record(r, seq, "discard", q.describe(), len(sums), result, err == nil)
	srv.render(w, r, http.StatusOK, "done", "Discarded", "failures", map[string]any{
		"Title": "Discarded", "Result": result, "OK": err == nil,
		"Note": "The contact.failed events stay in the event history; the open set no longer lists them."})
}

func (srv *Server) unmask(w http.ResponseWriter, r *http.Request) {
	id := r.PostFormValue("id")
	seq, ok := srv.audit(w, r, audit.Entry{Action: audit.ActionUnmask, CommandIDs: []string{id}, Count: 1})
	if !ok {
		return
	}
	srv.record(r, seq, "unmask", "commandId "+id, 1, "email and mobile shown", true)
	srv.showFailure(w, r, id, true, "Email and mobile are shown in full; this was logged.", "")
}

// repairForm is the repair page's form: the command's fields, its broken
// rules, and what was typed.
type repairForm struct {
	CommandID string
	Reason    contact.Reason
	Fields    []repairField
	Extra     string
	Errors    []string
	Providers []string
}

type repairField struct {
	Name, Label, Value, Placeholder, Error, Help string
	Masked                                       bool
}

// repairFields are the command's fields the form shows; others are set
// with "field=value" lines.
var repairFields = []struct{ name, label string }{
	{"provider", "Provider"}, {"name", "Name"}, {"email", "Email"}, {"mobile", "Mobile"}, {"tagId", "Tag id"}, {"companyName", "Company name"},
}

// personal fields are not filled in: a repair sends what is typed, and
// keeps the value otherwise.
var personal = map[string]bool{"email": true, "mobile": true}

// openFailure reads a command's own open failure, whole.
func (srv *Server) openFailure(ctx context.Context, id string) (*failstore.Failure, error) {
	whole, err := srv.openOf(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, f := range whole {
		if !f.Conflict {
			return f, nil
		}
	}
	return nil, nil
}

func commandFields(f *failstore.Failure) map[string]string {
	out := map[string]string{}
	var obj map[string]any
	if json.Unmarshal(f.Data.Command, &obj) == nil {
		for _, rf := range repairFields {
			if s, ok := obj[rf.name].(string); ok {
				out[rf.name] = s
			} else if v, ok := obj[rf.name]; ok && v != nil {
				b, _ := json.Marshal(v)
				out[rf.name] = string(b)
			}
		}
	}
	return out
}

func (srv *Server) newRepairForm(f *failstore.Failure) repairForm {
	form := repairForm{CommandID: f.CommandID, Reason: f.Reason, Providers: []string{"instantpay", "pik"}}
	current := commandFields(f)
	shown := replay.MaskFailed(f.Data) // the placeholders and rule errors, as every page shows them
	masked := map[string]any{}
	_ = json.Unmarshal(shown.Command, &masked)
	for _, rf := range repairFields {
		fld := repairField{Name: rf.name, Label: rf.label, Value: current[rf.name]}
		if personal[rf.name] {
			fld.Masked = true
			fld.Value = ""
			if m, ok := masked[rf.name].(string); ok && m != "" {
				fld.Placeholder = m
			}
			fld.Help = "Leave empty to keep the value the command has; type a new one to change it."
		}
		for _, fe := range shown.Errors {
			if fe.Field == rf.name {
				fld.Error = fe.Message
			}
		}
		form.Fields = append(form.Fields, fld)
	}
	return form
}

func (srv *Server) repairPage(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	f, err := srv.openFailure(r.Context(), id)
	switch {
	case err != nil:
		srv.fail(w, r, http.StatusBadGateway, "the failure could not be read: "+err.Error())
		return
	case f == nil:
		srv.fail(w, r, http.StatusNotFound, "commandId "+id+" has no open failure to repair")
		return
	case f.Reason == contact.ReasonMalformed:
		srv.fail(w, r, http.StatusConflict, "a malformed command has no fields to repair: discard it and fix the publisher")
		return
	}
	srv.render(w, r, http.StatusOK, "repair", "Repair "+id, "failures", srv.newRepairForm(f))
}

// repair validates the repaired command with the service's rules and, when
// it keeps them, sends it as a new generation; otherwise it shows the form
// again with each broken rule beside its field.
func (srv *Server) repair(w http.ResponseWriter, r *http.Request) {
	id := r.PostFormValue("id")
	f, err := srv.openFailure(r.Context(), id)
	switch {
	case err != nil:
		srv.fail(w, r, http.StatusBadGateway, "the failure could not be read: "+err.Error())
		return
	case f == nil:
		srv.fail(w, r, http.StatusNotFound, "commandId "+id+" has no open failure to repair (any longer)")
		return
	}
	form := srv.newRepairForm(f)
	current := commandFields(f)
	var sets []replay.Set
	for i := range form.Fields {
		fld := &form.Fields[i]
		fld.Error = ""
		typed := r.PostFormValue(fld.Name)
		fld.Value = typed // as typed, to mend on the form shown again
		if (fld.Masked && typed == "") || typed == current[fld.Name] {
			continue
		}
		sets = append(sets, replay.Set{Path: []string{fld.Name}, Value: typed})
	}
	form.Extra = r.PostFormValue("extra")
	for line := range strings.SplitSeq(form.Extra, "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		s, err := replay.ParseSet(line)
		if err == nil {
			err = replay.CheckSetPath(s)
		}
		if err != nil {
			form.Errors = append(form.Errors, strings.TrimPrefix(err.Error(), "--set "))
			continue
		}
		sets = append(sets, s)
	}
	if len(form.Errors) == 0 && len(sets) == 0 {
		form.Errors = append(form.Errors, "nothing was changed: change a field, or replay the command unchanged from its page")
	}
	if len(form.Errors) > 0 {
		srv.render(w, r, http.StatusUnprocessableEntity, "repair", "Repair "+id, "failures", form)
		return
	}
	changed := make([]string, len(sets))
	for i, s := range sets {
		changed[i] = strings.Join(s.Path, ".")
	}
	what := "commandId " + id + ", fields " + strings.Join(changed, ",")
	seq, ok := srv.audit(w, r, audit.Entry{Action: audit.ActionRepair, CommandIDs: []string{id}, Fields: changed, Count: 1})
	if !ok {
		return
	}
	var item replay.Item
	sum, err := replay.Replay(r.Context(), srv.cfg.JS, replay.FromOpen([]*failstore.Failure{f}), replay.Options{
		Repair: sets, Rate: MaxRate, Validator: srv.validator, OnItem: func(it replay.Item) { item = it },
	})
	var rerr *replay.RepairError
	if errors.As(err, &rerr) {
		for _, fe := range rerr.Errors {
			placed := false
			for i := range form.Fields {
				if form.Fields[i].Name == fe.Field {
					form.Fields[i].Error = fe.Message
					placed = true
				}
			}
			if !placed {
				form.Errors = append(form.Errors, fe.Field+": "+fe.Message)
			}
		}
		if len(rerr.Errors) == 0 {
			form.Errors = append(form.Errors, rerr.Message)
		}
		broken := max(1, len(rerr.Errors))
		srv.record(r, seq, "repair", what, 1, fmt.Sprintf("refused: %d %s broken, nothing sent", broken, plural(broken, "rule", "rules")), false)
		srv.render(w, r, http.StatusUnprocessableEntity, "repair", "Repair "+id, "failures", form)
		return
	}
	if err == nil && item.Err != nil {
		err = item.Err
	}
	if err == nil && sum.Replayed == 0 && item.Earlier == nil {
		err = fmt.Errorf("not sent: %s", item.Skip)
	}
	srv.Reload()
	switch {
	case err != nil:
		srv.record(r, seq, "repair", what, 1, "failed: "+err.Error(), false)
		srv.fail(w, r, http.StatusBadGateway, "the repaired command was not sent: "+err.Error())
	case item.Refused:
		// Another session's repair (or a replay) of this failure was sent
		// first: it holds the generation, and the stream dropped this one.
		srv.record(r, seq, "repair", what, 1, "refused, nothing sent: the failure "+item.Earlier.What(), false)
		srv.showFailure(w, r, id, false, "", "Not sent: this failure "+item.Earlier.What()+
			", and that command's outcome stands; the stream dropped this repair as a duplicate. Its outcome shows on this page once it is recorded; if it fails again, repair the new failure.")
	case item.Earlier != nil:
		srv.record(r, seq, "repair", what, 1, "already sent: the failure "+item.Earlier.What(), true)
		srv.showFailure(w, r, id, false, "Already sent: this failure "+item.Earlier.What()+"; nothing was sent again.", "")
	default:
		result := fmt.Sprintf("sent as a new generation (%s seq %d)", item.Ack.Stream, item.Ack.Sequence)
		srv.record(r, seq, "repair", what, 1, result, true)
		srv.showFailure(w, r, id, false, "Repaired and "+result+". The service decides it now; this page shows its outcome once it is recorded.", "")
	}
}

// selectionRange says the range of the open failures a selection covered:
// those stored up to the sequence its preview showed.
func selectionRange(q query) string {
	if q.UpTo == 0 {
		return ""
	}
	return fmt.Sprintf("open failures stored up to seq %d", q.UpTo)
}
