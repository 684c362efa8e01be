package sandbox

import (
	"encoding/json"
	"net/http"
)

// adminPrefix starts the path of every admin endpoint.
const adminPrefix = "/_sandbox/"

// maxFaultBody is the largest fault accepted by POST /_sandbox/faults.
const maxFaultBody = 64 << 10

// routeAdmin registers the admin endpoints described in the package doc.
func (h *harness) routeAdmin() {
	h.mux.HandleFunc("GET /_sandbox/faults", h.adminFaults)
	h.mux.HandleFunc("POST /_sandbox/faults", h.adminInject)
	h.mux.HandleFunc("DELETE /_sandbox/faults", func(w http.ResponseWriter, r *http.Request) {
		h.ClearFaults()
		h.adminFaults(w, r)
	})
	h.mux.HandleFunc("GET /_sandbox/down", h.adminDown)
	h.mux.HandleFunc("POST /_sandbox/down", func(w http.ResponseWriter, r *http.Request) {
		h.SetDown(true)
		h.adminDown(w, r)
	})
	h.mux.HandleFunc("DELETE /_sandbox/down", func(w http.ResponseWriter, r *http.Request) {
		h.SetDown(false)
		h.adminDown(w, r)
	})
	h.mux.HandleFunc("GET /_sandbox/contacts", h.adminContacts)
	h.mux.HandleFunc(adminPrefix, func(w http.ResponseWriter, r *http.Request) {
		h.adminError(w, http.StatusNotFound, "no admin endpoint "+r.Method+" "+r.URL.Path)
	})
}

// adminInject appends the fault in the request body.
func (h *harness) adminInject(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		return
	}
	if len(body) > maxFaultBody {
		h.adminError(w, http.StatusRequestEntityTooLarge, "fault body too large")
		return
	}
	var f Fault
	if err := json.Unmarshal(body, &f); err != nil {
		h.adminError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := f.validate(); err != nil {
		h.adminError(w, http.StatusBadRequest, "invalid fault: "+err.Error())
		return
	}
	h.Inject(f)
	h.adminFaults(w, r)
}

// adminFaults lists the queued faults.
func (h *harness) adminFaults(w http.ResponseWriter, _ *http.Request) {
	h.mu.Lock()
	faults := append([]Fault{}, h.faults...)
	h.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"provider":    h.provider,
		"environment": environment,
		"faults":      faults,
	})
}

// adminDown says whether the sandbox is down.
func (h *harness) adminDown(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"provider":    h.provider,
		"environment": environment,
		"down":        h.isDown(),
	})
}

// adminContacts lists the stored contacts with the counters.
func (h *harness) adminContacts(w http.ResponseWriter, _ *http.Request) {
	contacts := h.Contacts()
	out := map[string]any{
		"provider":    h.provider,
		"environment": environment,
		"createCalls": h.CreateCalls(),
		"count":       len(contacts),
		"duplicates":  h.Duplicates(),
		"contacts":    contacts,
	}
	if h.extraCounts != nil {
		for k, v := range h.extraCounts() {
			out[k] = v
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// adminError answers an admin request that cannot be served.
func (h *harness) adminError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{
		"provider":    h.provider,
		"environment": environment,
		"error":       "SANDBOX: " + msg,
	})
}
