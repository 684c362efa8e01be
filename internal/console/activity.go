package console

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"
)

// entry is one action done from the console.
type entry struct {
	At     time.Time
	User   string
	Action string
	What   string
	Count  int
	Result string
	OK     bool
}

// activity keeps the latest actions, for the activity page; the log keeps
// them all.
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

// record logs an action and keeps it for the activity page. what and
// result must hold no personal data (commandIds, counts and reasons).
func (srv *Server) record(r *http.Request, action, what string, n int, result string, ok bool) {
	user := "?"
	if s := sessionOf(r); s != nil {
		user = s.User
	}
	srv.recordAs(user, action, what, n, result, ok)
}

func (srv *Server) recordAs(user, action, what string, n int, result string, ok bool) {
	level := slog.LevelInfo
	if !ok {
		level = slog.LevelWarn
	}
	srv.cfg.Log.Log(context.Background(), level, "console action", "user", user, "action", action, "selection", what, "count", n, "result", result)
	srv.activity.add(entry{At: srv.cfg.Now(), User: user, Action: action, What: what, Count: n, Result: result, OK: ok})
}

func (srv *Server) activityPage(w http.ResponseWriter, r *http.Request) {
	srv.render(w, r, http.StatusOK, "activity", "Activity", "activity", srv.activity.latest())
}
