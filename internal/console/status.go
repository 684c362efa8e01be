package console

import (
	"net/http"
	"time"

	"github.com/contactrelay/contactrelay/internal/status"
)

// statusData is the Status page's: the snapshot, and its outcomes per
// minute as charts.
type statusData struct {
	status.Snapshot
	Created, Failed chart
}

// statusPage shows what the service is doing now, as 'consumer status'
// does: it asks every instance (status.Gather) as the page is asked for.
func (srv *Server) statusPage(w http.ResponseWriter, r *http.Request) {
	s := status.Gather(r.Context(), srv.cfg.JS, status.DefaultWait)
	created := make([]uint64, len(s.Minutes))
	failed := make([]uint64, len(s.Minutes))
	for i, m := range s.Minutes {
		created[i], failed[i] = m.Created, m.Failed
	}
	var start time.Time
	if len(s.Minutes) > 0 {
		start = s.Minutes[0].Start
	}
	srv.render(w, r, http.StatusOK, "status", "Status", "status", statusData{Snapshot: s,
		Created: bars(created, start, time.Minute, "contact.created event", "contact.created events"),
		Failed:  bars(failed, start, time.Minute, "contact.failed event", "contact.failed events")})
}
