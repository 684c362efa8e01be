package console

import (
	"net/http"

	"github.com/contactrelay/contactrelay/internal/status"
)

// statusPage shows what the service is doing now, as 'consumer status'
// does: it asks every instance (status.Gather) as the page is asked for.
func (srv *Server) statusPage(w http.ResponseWriter, r *http.Request) {
	s := status.Gather(r.Context(), srv.cfg.JS, status.DefaultWait)
	srv.render(w, r, http.StatusOK, "status", "Status", "status", s)
}
