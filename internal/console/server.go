package console

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/contactrelay/contactrelay/internal/openfailures"
	"github.com/contactrelay/contactrelay/rules"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed assets
var assetFiles embed.FS

// Server is the console. Build it with New, serve Handler, and run Run for
// as long as it serves: Run keeps its view of the open failures and its
// figures fresh. It is safe for concurrent use.
type Server struct {
	cfg       Config
	accounts  *accounts
	sessions  *sessions
	pages     map[string]*template.Template
	validator *rules.Validator

	// follow keeps the view of the open failures that every listing is
	// answered from.
	follow *openfailures.Follower
	// search, when set, answers a text filter in place of the index's
	// own match (the message and commandId holding the text): the
	// sequences of the open failures it found, and whether it could
	// answer for that text.
	search func(ctx context.Context, text string) (map[uint64]bool, bool)
	stats  atomic.Pointer[stats]
	// endedHours are the contact.failed counts of the hours that had ended
	// at the last load of the stats, by their start; countCalls counts the
	// counting consumers made. Only loadStats uses them.
	endedHours map[time.Time]uint64
	countCalls int
	// reload asks Run to reload the open failures now (after an action).
	reload chan struct{}

	jobs     *jobs
	activity *activity

	// throttle counts wrong sign-ins per address and per account and
	// address; checking bounds the password checks made at once.
	throttle *throttle
	checking chan struct{}

	// runCtx is Run's context: replays started from a page belong to
	// Run, not to the request that started them.
	runMu  sync.Mutex
	runCtx context.Context
}

// New checks cfg and builds a Server.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	pages, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	accts, err := newAccounts(&cfg)
	if err != nil {
		return nil, err
	}
	ss, err := newSessions(cfg)
	if err != nil {
		return nil, err
	}
	srv := &Server{
		cfg:       cfg,
		sessions:  ss,
		pages:     pages,
		validator: rules.NewValidator(),
		reload:    make(chan struct{}, 1),
		jobs:      newJobs(),
		activity:  &activity{},
		throttle:  newThrottle(cfg.Now),
		checking:  make(chan struct{}, 4),
		runCtx:    context.Background(),
		follow:    openfailures.NewFollower(cfg.JS, cfg.Log),
	}
	accts.cfg = &srv.cfg
	srv.accounts = accts
	return srv, nil
}

// readOnlyNote says, in a refusal, that the console is read-only.
func (srv *Server) readOnlyNote() string {
	if srv.cfg.ReadOnly {
		return " (the console is read-only: CONSOLE_READ_ONLY=true)"
	}
	return ""
}

// Run loads the open failures and the figures, then reloads them until ctx
// is cancelled, and cancels the replays still running when it returns.
func (srv *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv.runMu.Lock()
	srv.runCtx = ctx
	srv.runMu.Unlock()

	var wg sync.WaitGroup
	wg.Go(func() { srv.adoptJobs(ctx) })
	wg.Go(func() {
		for {
			srv.stats.Store(srv.loadStats(ctx))
			select {
			case <-ctx.Done():
				return
			case <-time.After(srv.cfg.StatsRefresh):
			}
		}
	})
	for {
		srv.follow.Load(ctx)
		wait := srv.cfg.Refresh
		select {
		case <-ctx.Done():
			wg.Wait()
			srv.jobs.wait()
			return nil
		case <-srv.reload:
		case <-time.After(wait):
		}
	}
}

// Reload asks Run to reload the open failures at once.
func (srv *Server) Reload() {
	select {
	case srv.reload <- struct{}{}:
	default:
	}
}

// textSeqs returns what srv.search found for q's text, nil when the
// index matches the text itself.
func (srv *Server) textSeqs(ctx context.Context, q *query) map[uint64]bool {
	if q.Text == "" || srv.search == nil {
		return nil
	}
	seqs, ok := srv.search(ctx, q.Text)
	if !ok {
		return nil
	}
	return seqs
}

// current returns the latest view of the open failures, nil before the
// first load.
func (srv *Server) current() *openfailures.View { return srv.follow.Current() }

// Handler returns the console's HTTP handler.
func (srv *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	assets, _ := fs.Sub(assetFiles, "assets")
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(assets)))
	mux.HandleFunc("GET /login", srv.loginPage)
	mux.HandleFunc("POST /login", srv.login)
	mux.HandleFunc("POST /logout", srv.logout)
	mux.HandleFunc("GET /{$}", srv.overviewPage)
	mux.HandleFunc("GET /failures", srv.failuresPage)
	mux.HandleFunc("GET /failures.csv", srv.downloadCSV)
	mux.HandleFunc("GET /repair-file", srv.repairFilePage)
	mux.HandleFunc("POST /repair-file", srv.repairFile)
	mux.HandleFunc("GET /failure", srv.failurePage)
	mux.HandleFunc("POST /failure/unmask", srv.unmask)
	mux.HandleFunc("GET /failure/repair", srv.repairPage)
	mux.HandleFunc("POST /failure/repair", srv.repair)
	mux.HandleFunc("GET /replay", srv.replayPreview)
	mux.HandleFunc("POST /replay", srv.startReplay)
	mux.HandleFunc("GET /jobs/{id}", srv.jobPage)
	mux.HandleFunc("GET /jobs/{id}/events", srv.jobEvents)
	mux.HandleFunc("POST /jobs/{id}/cancel", srv.cancelJob)
	mux.HandleFunc("GET /discard", srv.discardPreview)
	mux.HandleFunc("POST /discard", srv.discard)
	mux.HandleFunc("GET /activity", srv.activityPage)
	mux.HandleFunc("GET /status", srv.statusPage)
	mux.HandleFunc("GET /pauses", srv.pausesPage)
	mux.HandleFunc("POST /pauses", srv.changePause)
	return srv.guard(mux)
}

// page is what every page's layout needs.
type page struct {
	Title string
	Nav   string
	User  string
	CSRF  string
	// Role is the user's role; Operator says it may act, and the
	// pages show action buttons only then.
	Role     Role
	Operator bool
	// NoAuth says the console runs without authentication.
	NoAuth bool
	// Stale says why the failures shown may be out of date.
	Stale string
	// Loaded is when the failures shown were read.
	Loaded time.Time
	Data   any
}

// render writes a page with the layout; a template error is the server's
// fault, and shows as a 500 with nothing of the page.
func (srv *Server) render(w http.ResponseWriter, r *http.Request, status int, name, title, nav string, data any) {
	p := page{Title: title, Nav: nav, Data: data, NoAuth: srv.cfg.NoAuth}
	if s := sessionOf(r); s != nil {
		p.User, p.CSRF = s.User, srv.sessions.csrf(s)
		p.Role = roleOf(r)
		p.Operator = p.Role == RoleOperator
	}
	if v := srv.current(); v != nil {
		var err error
		var ready bool
		p.Loaded, err, ready = v.State()
		switch {
		case err != nil:
			p.Stale = staleText(err)
		case !ready:
			read, of := v.Progress()
			p.Stale = fmt.Sprintf("the open failures are being read for the first time (%d of %d so far)", read, of)
		}
	} else {
		p.Stale = "the open failures are being read for the first time"
	}
	var b bytes.Buffer
	t, ok := srv.pages[name]
	if !ok {
		http.Error(w, "no page "+name, http.StatusInternalServerError)
		return
	}
	if err := t.ExecuteTemplate(&b, "layout", p); err != nil {
		srv.cfg.Log.Error("console: render page", "page", name, "err", err)
		http.Error(w, "the page could not be made; the console's log says why", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// fail shows an error page.
func (srv *Server) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	srv.render(w, r, status, "error", http.StatusText(status), "", msg)
}

// parseTemplates parses each page with the layout.
func parseTemplates() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		base := n[len("templates/") : len(n)-len(".html")]
		if base == "layout" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console templates: %w", err)
		}
		out[base] = t
	}
	return out, nil
}
