package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// environment labels every answer of a sandbox.
const environment = "SANDBOX"

// maxBody is the largest request body a sandbox reads, in bytes.
const maxBody = 1 << 20

// Contact is one contact a sandbox stored, as tests and GET /_sandbox/contacts
// see it.
type Contact struct {
	// ID is the identifier the sandbox gave the contact: InstantPay's
	// data._id, PIK's data.id.
	ID string `json:"id"`
	// Name is InstantPay's name or PIK's displayName.
	Name string `json:"name"`
	// Email is the email address as it was sent.
	Email string `json:"email"`
	// Mobile is InstantPay's mobile or PIK's phone, as it was sent.
	Mobile string `json:"mobile"`
	// ContactCode is PIK's contactCode; empty for InstantPay.
	ContactCode string `json:"contactCode,omitempty"`
	// CreatedAt is when the sandbox stored the contact, by its clock.
	CreatedAt time.Time `json:"createdAt"`
	// Body is the request body as received, numbers kept as json.Number.
	Body map[string]any `json:"body"`
}

// reply is one answer of a sandbox, before it is written.
type reply struct {
	status     int
	retryAfter time.Duration
	body       any
}

// handlerFunc answers one request whose body has been read.
type handlerFunc func(r *http.Request, body []byte) reply

// harness is what both sandboxes share: routing, latency, the contact store,
// the counters, fault injection and the admin endpoints. Its methods are
// safe for concurrent use; its fields other than those under mu are set once
// by init.
type harness struct {
	provider     string // "InstantPay" or "PIK", for messages
	latency      time.Duration
	now          func() time.Time
	mux          *http.ServeMux
	failure      func(Fault) reply     // the provider's error reply
	duplicateKey func(Contact) string  // contacts with equal keys are duplicates
	extraCounts  func() map[string]any // more counts for GET /_sandbox/contacts; may be nil
	idSalt       [5]byte
	closed       chan struct{}
	closeOnce    sync.Once
	hanging      atomic.Int64 // requests held by Hang or CreateThenHang now

	mu          sync.Mutex
	faults      []Fault
	down        bool
	createCalls int
	contacts    []Contact
	seq         uint32
}

// init prepares h for a provider whose error replies come from failure.
func (h *harness) init(provider string, latency time.Duration, now func() time.Time,
	failure func(Fault) reply, duplicateKey func(Contact) string) {
	if now == nil {
		now = time.Now
	}
	h.provider = provider
	h.latency = latency
	h.now = now
	h.failure = failure
	h.duplicateKey = duplicateKey
	h.closed = make(chan struct{})
	h.mux = http.NewServeMux()
	_, _ = rand.Read(h.idSalt[:]) // crypto/rand.Read never fails
	h.routeAdmin()
	h.mux.Handle("/", h.route(func(r *http.Request, _ []byte) reply {
		return h.failure(Fault{Status: http.StatusNotFound, Code: "404",
			Message: "SANDBOX: " + h.provider + " has no endpoint " + r.Method + " " + r.URL.Path})
	}))
}

// serve answers one request: admin endpoints at once, the provider's after
// the configured latency.
func (h *harness) serve(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, adminPrefix) && !sleep(r.Context(), h.latency) {
		return
	}
	h.mux.ServeHTTP(w, r)
}

// route makes an endpoint that is not a create call: it answers 503 while
// the sandbox is down, and fn's reply otherwise.
func (h *harness) route(fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			return // the client is gone
		}
		if h.isDown() {
			h.write(w, h.downReply())
			return
		}
		h.write(w, fn(r, body))
	})
}

// routeCreate makes a create endpoint: it counts the call, answers 503
// while the sandbox is down, and applies the next queued fault, if any.
func (h *harness) routeCreate(fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.createCalls++
		h.mu.Unlock()
		// Read the whole body first: only then does the server notice a
		// client that gives up, which ends a hang.
		body, err := readBody(r)
		if err != nil {
			return
		}
		if h.isDown() {
			h.write(w, h.downReply())
			return
		}
		f, ok := h.nextFault(body)
		if !ok {
			h.write(w, fn(r, body))
			return
		}
		if !sleep(r.Context(), f.Latency) {
			return
		}
		switch {
		case f.Drop:
			drop(w)
		case f.Hang:
			h.hang(w, r)
		case f.CreateThenHang:
			fn(r, body)
			h.hang(w, r)
		case f.failing():
			h.write(w, h.failure(f))
		default:
			h.write(w, fn(r, body))
		}
	})
}

// hang holds a request until its client gives up or h is closed, which
// drops the connection.
func (h *harness) hang(w http.ResponseWriter, r *http.Request) {
	h.hanging.Add(1)
	defer h.hanging.Add(-1)
	select {
	case <-r.Context().Done():
	case <-h.closed:
		drop(w)
	}
}

// downReply is the answer to every provider request while h is down.
func (h *harness) downReply() reply {
	return h.failure(Fault{Status: http.StatusServiceUnavailable,
		Message: "SANDBOX: " + h.provider + " is down (service unavailable)"})
}

// write sends rep as JSON.
func (h *harness) write(w http.ResponseWriter, rep reply) {
	if rep.retryAfter > 0 {
		w.Header().Set("Retry-After", retryAfterHeader(rep.retryAfter))
	}
	writeJSON(w, rep.status, rep.body)
}

// writeJSON sends body as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Sandbox", "true")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body) // a write error means the client is gone
}

// Inject queues f for the next create calls, after the faults already
// queued. It panics if f is invalid (negative Times or durations, a Status
// that is not an HTTP status), as that is a mistake in the calling code.
func (h *harness) Inject(f Fault) {
	if err := f.validate(); err != nil {
		panic("sandbox: Inject: " + err.Error())
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.faults = append(h.faults, f)
}

// ClearFaults removes every queued fault. Requests already hanging go on
// hanging until their clients give up.
func (h *harness) ClearFaults() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.faults = nil
}

// SetDown makes every provider request answer HTTP 503 while down is true.
// Create calls received while down are still counted; queued faults wait.
func (h *harness) SetDown(down bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.down = down
}

// Close releases the requests held by Hang and CreateThenHang faults, whose
// connections are then closed without an answer, and makes later hangs end
// at once. Call it before closing the server that serves the sandbox: an
// http.Server or httptest.Server waits for its handlers to return. Close may
// be called more than once.
func (h *harness) Close() {
	h.closeOnce.Do(func() { close(h.closed) })
}

// CreateCalls returns how many create requests the sandbox received,
// including the ones that failed for any reason.
func (h *harness) CreateCalls() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.createCalls
}

// Contacts returns a copy of the stored contacts, oldest first.
func (h *harness) Contacts() []Contact {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Contact, len(h.contacts))
	for i, c := range h.contacts {
		out[i] = c.clone()
	}
	return out
}

// Duplicates returns how many stored contacts repeat an earlier one: for
// InstantPay the same email (ignoring case) and mobile digits, for PIK the
// same contactCode (which PIK refuses, so it stays 0 there).
func (h *harness) Duplicates() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := make(map[string]bool, len(h.contacts))
	n := 0
	for _, c := range h.contacts {
		k := h.duplicateKey(c)
		if seen[k] {
			n++
		}
		seen[k] = true
	}
	return n
}

// isDown reports whether h is down.
func (h *harness) isDown() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.down
}

// nextFault takes the first queued fault that applies to a create call
// with this body, counting down its Times.
func (h *harness) nextFault(body []byte) (Fault, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	email, read := "", false
	for i, f := range h.faults {
		if f.Email != "" {
			if !read {
				email, read = bodyEmail(body), true
			}
			if !strings.EqualFold(f.Email, email) {
				continue
			}
		}
		if f.Times > 0 {
			h.faults[i].Times--
			if h.faults[i].Times == 0 {
				h.faults = slices.Delete(h.faults, i, i+1)
			}
		}
		return f, true
	}
	return Fault{}, false
}

// bodyEmail returns the email of a create call's body, or "" when it has
// none.
func bodyEmail(body []byte) string {
	var b struct {
		Email string `json:"email"`
	}
	_ = json.Unmarshal(body, &b) // a body without one matches no Email fault
	return b.Email
}

// store adds c unless conflicts (which may be nil) says it clashes with a
// stored contact; it reports whether c was added.
func (h *harness) store(c Contact, conflicts func(stored Contact) bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if conflicts != nil {
		for _, s := range h.contacts {
			if conflicts(s) {
				return false
			}
		}
	}
	h.contacts = append(h.contacts, c)
	return true
}

// newID returns an identifier unique within h, shaped like a MongoDB
// ObjectId: 24 hexadecimal characters (time, a per-sandbox salt, a counter).
func (h *harness) newID() string {
	h.mu.Lock()
	h.seq++
	seq := h.seq
	h.mu.Unlock()
	var b [12]byte
	binary.BigEndian.PutUint32(b[0:4], uint32(h.now().Unix()))
	copy(b[4:9], h.idSalt[:])
	b[9], b[10], b[11] = byte(seq>>16), byte(seq>>8), byte(seq)
	return hex.EncodeToString(b[:])
}

// clone returns a deep copy of c.
func (c Contact) clone() Contact {
	c.Body, _ = cloneJSON(c.Body).(map[string]any)
	return c
}

// cloneJSON returns a deep copy of a decoded JSON value.
func cloneJSON(v any) any {
	switch v := v.(type) {
	case map[string]any:
		if v == nil {
			return v
		}
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[k] = cloneJSON(x)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, x := range v {
			s[i] = cloneJSON(x)
		}
		return s
	}
	return v
}

// readBody reads up to maxBody+1 bytes of r's body; more than maxBody means
// the body is too large.
func readBody(r *http.Request) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r.Body, maxBody+1))
}

// sleep waits for d, or until ctx is done; it reports whether ctx is still
// live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
