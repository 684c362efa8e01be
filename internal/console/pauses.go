package console

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/contactrelay/contactrelay/internal/audit"
	"github.com/contactrelay/contactrelay/internal/pause"
	"github.com/contactrelay/contactrelay/rules"
)

// providerPause is one provider as the Providers page shows it.
type providerPause struct {
	Provider string
	Paused   *pause.State
}

type pausesData struct {
	Providers []providerPause
	Flash     string
	Err       string
}

// pauseStore binds the store of pauses, whose changes r asks for: each is
// written to the audit trail, as r's user and address, before it is
// made (and told to the PauseAudit hook, when set).
func (srv *Server) pauseStore(ctx context.Context, r *http.Request) (*pause.Store, error) {
	st, err := pause.Open(ctx, srv.cfg.JS)
	if err != nil {
		return nil, err
	}
	st.Audit = func(ctx context.Context, action string, s pause.State) error {
		if srv.cfg.PauseAudit != nil {
			if err := srv.cfg.PauseAudit(ctx, action, s); err != nil {
				return err
			}
		}
		if srv.cfg.Audit == nil {
			return nil
		}
		e := audit.PauseEntry(action, s.Provider, s.Reason)
		if ses := sessionOf(r); ses != nil {
			e.User = ses.User
		}
		e.From, e.Source = srv.accounts.clientAddr(r), "console"
		_, err := srv.cfg.Audit.Write(ctx, e)
		return err
	}
	return st, nil
}

func (srv *Server) pausesPage(w http.ResponseWriter, r *http.Request) {
	srv.showPauses(w, r, http.StatusOK, "", "")
}

// showPauses shows each provider, paused or not, with the action that
// changes it.
func (srv *Server) showPauses(w http.ResponseWriter, r *http.Request, status int, flash, failure string) {
	data := pausesData{Flash: flash, Err: failure}
	var list []pause.State
	st, err := srv.pauseStore(r.Context(), r)
	if err == nil {
		list, err = st.List(r.Context())
	}
	if err != nil && data.Err == "" {
		data.Err = "the pauses could not be read: " + err.Error()
	}
	for _, name := range rules.Providers() {
		p := providerPause{Provider: name}
		if i := slices.IndexFunc(list, func(s pause.State) bool { return s.Provider == name }); i >= 0 {
			p.Paused = &list[i]
		}
		data.Providers = append(data.Providers, p)
	}
	srv.render(w, r, status, "pauses", "Providers", "providers", data)
}

// changePause pauses or resumes a provider (action "pause" or "resume"),
// through the console's action path: CSRF-checked, recorded, audited.
func (srv *Server) changePause(w http.ResponseWriter, r *http.Request) {
	provider := strings.TrimSpace(r.PostFormValue("provider"))
	resume := r.PostFormValue("action") == "resume"
	action := "pause"
	if resume {
		action = "resume"
	}
	if !slices.Contains(rules.Providers(), provider) {
		srv.fail(w, r, http.StatusBadRequest, "no such provider")
		return
	}
	st, err := srv.pauseStore(r.Context(), r)
	if err == nil {
		user := "?"
		if s := sessionOf(r); s != nil {
			user = s.User
		}
		if resume {
			err = st.Resume(r.Context(), provider, user)
		} else {
			_, err = st.Pause(r.Context(), provider, strings.TrimSpace(r.PostFormValue("reason")), user)
		}
	}
	switch {
	case errors.Is(err, pause.ErrNotPaused):
		srv.showPauses(w, r, http.StatusOK, provider+" was not paused.", "")
		return
	case err != nil:
		srv.record(r, 0, action, provider, 1, "failed: "+err.Error(), false)
		srv.showPauses(w, r, http.StatusBadGateway, "", action+" "+provider+" failed: "+err.Error())
		return
	}
	srv.record(r, 0, action, provider, 1, action+"d", true)
	flash := provider + " paused: every instance holds its commands (none is exhausted) until it is resumed."
	if resume {
		flash = provider + " resumed: every instance calls it again."
	}
	srv.showPauses(w, r, http.StatusOK, flash, "")
}
