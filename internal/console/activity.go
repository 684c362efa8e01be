package console

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/contactrelay/contactrelay/internal/audit"
	"github.com/contactrelay/contactrelay/internal/failstore"
)

// entry is one action done from the console, with its result.
type entry struct {
	// Seq is the action's audit entry (zero: none).
	Seq    uint64
	At     time.Time
	User   string
	Action string
	What   string
	Count  int
	Result string
	OK     bool
}

// activity keeps the results of this console's latest actions, shown
// beside their audit entries (the log keeps them all).
type activity struct {
	mu      sync.Mutex
	entries []entry
}

const keptActivity = 200

func (a *activity) add(e entry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entries = append(a.entries, e)
	if len(a.entries) > keptActivity {
		a.entries = slices.Clone(a.entries[len(a.entries)-keptActivity:])
	}
}

func (a *activity) latest() []entry {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := slices.Clone(a.entries)
	slices.Reverse(out)
	return out
}

// result returns the result this console knows of an audit entry.
func (a *activity) result(seq uint64) (entry, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := len(a.entries) - 1; i >= 0; i-- {
		if a.entries[i].Seq == seq {
			return a.entries[i], true
		}
	}
	return entry{}, false
}

// audit writes an action's audit entry before the action is done, with
// the request's user and address; it returns the entry's sequence. When
// the entry cannot be written it answers the request (503) and returns
// false: the action must not happen.
func (srv *Server) audit(w http.ResponseWriter, r *http.Request, e audit.Entry) (uint64, bool) {
	if srv.cfg.Audit == nil {
		return 0, true
	}
	if s := sessionOf(r); s != nil {
		e.User = s.User
	}
	e.From, e.Source = srv.accounts.clientAddr(r), "console"
	seq, err := srv.cfg.Audit.Write(r.Context(), e)
	if err != nil {
		srv.cfg.Log.Error("console: action refused: its audit entry could not be written", "user", e.User, "action", e.Action, "err", err)
		srv.fail(w, r, http.StatusServiceUnavailable, err.Error()+". Nothing was done; try again once the audit stream takes entries ('consumer setup' creates it).")
		return 0, false
	}
	return seq, true
}

// commandIDs lists the commandIds of a selection, when it holds at most
// a few.
func commandIDs(sums []failstore.Summary) []string {
	if len(sums) > 20 {
		return nil
	}
	out := make([]string, len(sums))
	for i, s := range sums {
		out[i] = s.CommandID
	}
	return out
}

// record logs an action and keeps its result for the activity page. what
// and result must hold no personal data (commandIds, counts and reasons).
func (srv *Server) record(r *http.Request, seq uint64, action, what string, n int, result string, ok bool) {
	user := "?"
	if s := sessionOf(r); s != nil {
		user = s.User
	}
	srv.recordAs(user, seq, action, what, n, result, ok)
}

func (srv *Server) recordAs(user string, seq uint64, action, what string, n int, result string, ok bool) {
	level := slog.LevelInfo
	if !ok {
		level = slog.LevelWarn
	}
	srv.cfg.Log.Log(context.Background(), level, "console action", "user", user, "action", action, "selection", what, "count", n, "result", result, "audit", seq)
	srv.activity.add(entry{Seq: seq, At: srv.cfg.Now(), User: user, Action: action, What: what, Count: n, Result: result, OK: ok})
}

// activityRow is a line of the activity page.
type activityRow struct {
	At                 time.Time
	User, From, Action string
	What, Detail       string
	Count              int
	Result             string
	OK, Known          bool
	CommandIDs         []string
}

type activityData struct {
	Rows      []activityRow
	Partial   bool
	Q         audit.Query
	Actions   []string
	Next      string
	Audited   bool
	Error     string
	FirstPage string
}

// activityPageSize is how many entries a page of the activity lists;
// auditScan how many entries a page reads at most to find them (one read
// each), and a failure's page to find its own.
const (
	activityPageSize = 50
	auditScan        = 5000
)

// activityPage lists the audit trail, newest first, filtered by user,
// action and commandId, a page at a time; beside each entry, its result
// when this console did it. Every replica reads the same stream. Without
// an audit stream, it lists this console's actions since it started.
func (srv *Server) activityPage(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	data := activityData{Actions: audit.Actions, Audited: srv.cfg.Audit != nil}
	if srv.cfg.Audit == nil {
		for _, e := range srv.activity.latest() {
			data.Rows = append(data.Rows, activityRow{At: e.At, User: e.User, Action: e.Action, What: e.What, Count: e.Count, Result: e.Result, OK: e.OK, Known: true})
		}
		srv.render(w, r, http.StatusOK, "activity", "Activity", "activity", data)
		return
	}
	q := audit.Query{User: v.Get("user"), Action: v.Get("action"), CommandID: v.Get("commandId"), Limit: activityPageSize, MaxScan: auditScan}
	q.Before, _ = strconv.ParseUint(v.Get("before"), 10, 64)
	data.Q = q
	p, err := audit.List(r.Context(), srv.cfg.JS, q)
	if err != nil {
		data.Error = "the audit trail could not be read: " + err.Error()
	}
	data.Partial = p.Partial
	for _, e := range p.Entries {
		row := activityRow{At: e.Time, User: e.User, From: e.From, Action: e.Action, What: e.What(), Detail: e.Detail, Count: e.Count, CommandIDs: e.CommandIDs}
		if res, ok := srv.activity.result(e.Seq); ok {
			row.Result, row.OK, row.Known = res.Result, res.OK, true
		}
		data.Rows = append(data.Rows, row)
	}
	if p.Next != 0 {
		next := url.Values{}
		for k, x := range map[string]string{"user": q.User, "action": q.Action, "commandId": q.CommandID} {
			if x != "" {
				next.Set(k, x)
			}
		}
		next.Set("before", strconv.FormatUint(p.Next, 10))
		data.Next = "/activity?" + next.Encode()
	}
	srv.render(w, r, http.StatusOK, "activity", "Activity", "activity", data)
}
