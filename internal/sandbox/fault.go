package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Fault is a failure injected into a sandbox's create calls, with Inject or
// POST /_sandbox/faults. The kinds are tried in this order, after Latency:
// Drop, Hang, CreateThenHang, then an error reply when Status or Code is set.
// A Fault with none of them only adds Latency to an otherwise normal answer.
// A fault applies to a create call before its credentials and body are
// checked, as a failure in front of the provider would.
type Fault struct {
	// Times is how many create calls the fault applies to; 0 means every
	// one until ClearFaults. A fault with Times 0 stays in the queue, so
	// the faults queued after it wait, for the calls it applies to, until
	// it is cleared.
	Times int
	// Email, when set, makes the fault apply only to create calls whose
	// body's email equals it, ignoring case: the other calls pass it by
	// and take the first queued fault that applies to them, if any. It
	// fails chosen contacts whatever the order of the calls.
	Email string
	// Status is the HTTP status of the error reply, e.g. 503, 429 or 500.
	// Zero with Code set means 200: the providers answer errors in the body.
	Status int
	// Code is the status code in the reply's body: InstantPay's statuscode
	// (default "ISE"), PIK's code (default Status; a number when it parses
	// as one, otherwise the string as it is).
	Code string
	// Message is the reply's message; the default says it is a SANDBOX fault.
	Message string
	// RetryAfter, when positive, is sent as the Retry-After header of the
	// error reply, in whole seconds rounded up.
	RetryAfter time.Duration
	// Hang holds the request without an answer until the client gives up
	// (its context is done) or the sandbox is closed. Nothing is stored.
	Hang bool
	// CreateThenHang handles the request as usual, storing the contact, and
	// then hangs as Hang does: the ambiguous outcome.
	CreateThenHang bool
	// Drop closes the connection without an answer. Nothing is stored.
	Drop bool
	// Latency delays the call before anything else happens.
	Latency time.Duration
}

// failing reports whether f asks for an error reply.
func (f Fault) failing() bool { return f.Status != 0 || f.Code != "" }

// validate reports what makes f unusable.
func (f Fault) validate() error {
	var errs []error
	if f.Times < 0 {
		errs = append(errs, errors.New("times must be 0 (until cleared) or more"))
	}
	if f.Status != 0 && (f.Status < 100 || f.Status > 599) {
		errs = append(errs, fmt.Errorf("status %d is not an HTTP status", f.Status))
	}
	if f.RetryAfter < 0 {
		errs = append(errs, errors.New("retryAfter must not be negative"))
	}
	if f.Latency < 0 {
		errs = append(errs, errors.New("latency must not be negative"))
	}
	return errors.Join(errs...)
}

// faultJSON is a Fault as the admin endpoint shows it.
type faultJSON struct {
	Times          int    `json:"times"`
	Email          string `json:"email,omitempty"`
	Status         int    `json:"status,omitempty"`
	Code           string `json:"code,omitempty"`
	Message        string `json:"message,omitempty"`
	RetryAfter     string `json:"retryAfter,omitempty"`
	Hang           bool   `json:"hang,omitempty"`
	CreateThenHang bool   `json:"createThenHang,omitempty"`
	Drop           bool   `json:"drop,omitempty"`
	Latency        string `json:"latency,omitempty"`
}

// MarshalJSON encodes f with lower-case field names and durations as Go
// duration strings, leaving out fields that are zero (except times).
func (f Fault) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultJSON{
		Times:          f.Times,
		Email:          f.Email,
		Status:         f.Status,
		Code:           f.Code,
		Message:        f.Message,
		RetryAfter:     durationText(f.RetryAfter),
		Hang:           f.Hang,
		CreateThenHang: f.CreateThenHang,
		Drop:           f.Drop,
		Latency:        durationText(f.Latency),
	})
}

// UnmarshalJSON decodes f from the form MarshalJSON writes. It also accepts
// a number for code, and durations as numbers of seconds. Unknown fields are
// an error.
func (f *Fault) UnmarshalJSON(data []byte) error {
	var in struct {
		Times          int             `json:"times"`
		Email          string          `json:"email"`
		Status         int             `json:"status"`
		Code           json.RawMessage `json:"code"`
		Message        string          `json:"message"`
		RetryAfter     json.RawMessage `json:"retryAfter"`
		Hang           bool            `json:"hang"`
		CreateThenHang bool            `json:"createThenHang"`
		Drop           bool            `json:"drop"`
		Latency        json.RawMessage `json:"latency"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return fmt.Errorf("decode fault: %w", err)
	}
	code, err := codeText(in.Code)
	if err != nil {
		return fmt.Errorf("decode fault code: %w", err)
	}
	retryAfter, err := parseDuration(in.RetryAfter)
	if err != nil {
		return fmt.Errorf("decode fault retryAfter: %w", err)
	}
	latency, err := parseDuration(in.Latency)
	if err != nil {
		return fmt.Errorf("decode fault latency: %w", err)
	}
	*f = Fault{
		Times:          in.Times,
		Email:          in.Email,
		Status:         in.Status,
		Code:           code,
		Message:        in.Message,
		RetryAfter:     retryAfter,
		Hang:           in.Hang,
		CreateThenHang: in.CreateThenHang,
		Drop:           in.Drop,
		Latency:        latency,
	}
	return nil
}

// durationText is d as a Go duration string, or "" for zero.
func durationText(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// codeText reads a JSON string or number as a string.
func codeText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", errors.New("want a string or a number")
	}
	return n.String(), nil
}

// parseDuration reads a JSON Go duration string, or a number of seconds.
func parseDuration(raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return time.ParseDuration(s)
	}
	var secs float64
	if err := json.Unmarshal(raw, &secs); err != nil {
		return 0, errors.New(`want a duration such as "1.5s" or a number of seconds`)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// retryAfterHeader is d in whole seconds, rounded up, as Retry-After wants.
func retryAfterHeader(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	return strconv.FormatInt(secs, 10)
}

// drop closes the request's connection without an answer, hijacking it when
// the server allows that and aborting the handler otherwise.
func drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		_ = conn.Close() // the point is to close it; a failure changes nothing
		return
	}
	panic(http.ErrAbortHandler)
}
