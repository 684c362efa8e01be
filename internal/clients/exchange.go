package clients

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/contactrelay/contactrelay/internal/clients/provider"
	"github.com/contactrelay/contactrelay/internal/redact"
)

// MaxReplyBytes is the default bound of a reply body read from a provider.
const MaxReplyBytes = 1 << 20

// Codes of a provider.Error for a call that got no answer.
const (
	CodeTimeout    = "timeout"
	CodeConnection = "connection"
)

// Call names one kind of request to a provider, for reading its replies and
// classifying its failures. A Call is a value; it is safe for concurrent use.
type Call struct {
	// Provider and Op fill the fields of the same names of every
	// provider.Error the call returns.
	Provider string
	Op       string
	// Safe marks a call that changes nothing at the provider (a lookup, a
	// token request): when it gets no answer it is Transient, never
	// Ambiguous.
	Safe bool
	// MaxReplyBytes bounds the reply body; zero means MaxReplyBytes.
	MaxReplyBytes int64
	// Secrets are the client's credentials and tokens. Do scrubs them from
	// everything the call returns (the reply's header values and body, and
	// every *provider.Error), so that nothing derived from the provider's
	// answer (an error's message, code or request id, a contact's
	// upstream fields) can carry one into a log, an event or a health
	// endpoint. Nil scrubs nothing: for a call whose reply must be read as
	// it came, such as a token request, whose caller scrubs its errors
	// with ScrubError.
	Secrets *redact.Secrets
}

// Reply is a provider's answer: the HTTP status, the headers and the body,
// read whole up to the call's bound.
type Reply struct {
	Status int
	Header http.Header
	Body   []byte
}

// OK reports whether the HTTP status is 2xx.
func (r Reply) OK() bool { return r.Status >= 200 && r.Status < 300 }

// RequestID returns the request id a provider or its gateway put in the
// reply headers (X-Request-Id, X-Correlation-Id, Request-Id or
// X-Amzn-Requestid), or "".
func (r Reply) RequestID() string {
	for _, h := range []string{"X-Request-Id", "X-Correlation-Id", "Request-Id", "X-Amzn-Requestid"} {
		if v := r.Header.Get(h); v != "" {
			return v
		}
	}
	return ""
}

// Do sends req with client and reads the reply. It traces whether the
// request was written to the connection, so that a call that then gets no
// answer is classified by TransportError as Ambiguous rather than
// Transient. Every error it returns is a *provider.Error; an HTTP
// status of any kind is a Reply, not an error. When the body of a non-2xx
// reply cannot be read whole, Do returns what it read: the status is the
// answer. The request's context bounds the whole exchange, body included.
func (c Call) Do(client *http.Client, req *http.Request) (Reply, error) {
	ctx, w := TraceWrites(req.Context())
	return c.DoTraced(client, req.WithContext(ctx), w)
}

// TraceWrites returns ctx with a trace that notes whether a request made
// with it is written to its connection, for DoTraced: a request built
// with that context from the start need not be copied to carry it, as Do
// copies one.
func TraceWrites(ctx context.Context) (context.Context, *WriteTrace) {
	// The flag and its trace in one allocation.
	w := &WriteTrace{}
	w.trace.WroteRequest = w.wroteRequest
	return httptrace.WithClientTrace(ctx, &w.trace), w
}

// DoTraced is Do for a request whose context came from TraceWrites, with
// the WriteTrace it returned.
func (c Call) DoTraced(client *http.Client, req *http.Request, w *WriteTrace) (Reply, error) {
	resp, err := client.Do(req)
	if err != nil {
		return Reply{}, c.TransportError(err, w.wrote.Load())
	}
	defer resp.Body.Close()

	reply := Reply{Status: resp.StatusCode, Header: c.scrubHeader(resp.Header)}
	limit := c.MaxReplyBytes
	if limit <= 0 {
		limit = MaxReplyBytes
	}
	body, err := readBody(resp.Body, resp.ContentLength, limit)
	tooLarge := int64(len(body)) > limit
	if tooLarge {
		body = body[:limit]
	}
	reply.Body = c.Secrets.Bytes(body)
	if !reply.OK() {
		return reply, nil
	}
	if err == nil && tooLarge {
		err = fmt.Errorf("the reply is larger than %d bytes", limit)
	}
	if err != nil {
		pe := c.TransportError(fmt.Errorf("read reply: %w", err), true)
		pe.HTTPStatus = reply.Status
		pe.RequestID = reply.RequestID()
		return Reply{}, pe
	}
	return reply, nil
}

// WriteTrace notes whether a request was written to its connection (see
// TraceWrites).
type WriteTrace struct {
	wrote atomic.Bool
	trace httptrace.ClientTrace
}

func (w *WriteTrace) wroteRequest(info httptrace.WroteRequestInfo) {
	if info.Err == nil {
		w.wrote.Store(true)
	}
}

// TransportError classifies err, the failure of a call that got no complete
// answer. wrote says whether the request was written to the connection. A
// request that was not written (or failed to dial) changed nothing and is
// Transient; one that was written and then timed out or lost its connection
// may have been carried out, and is Ambiguous unless the call is Safe. The
// Code is "timeout" when a deadline ran out and "connection" otherwise. The
// error is scrubbed of the call's Secrets: a transport error may quote what
// the provider sent (a malformed status line or header, say).
func (c Call) TransportError(err error, wrote bool) *provider.Error {
	if neverSent(err) {
		wrote = false
	}
	pe := &provider.Error{
		Provider: c.Provider,
		Op:       c.Op,
		Class:    provider.Transient,
		Code:     CodeConnection,
		Err:      err,
	}
	if isTimeout(err) {
		pe.Code = CodeTimeout
	}
	switch {
	case !wrote:
		pe.Message = "the request was not sent: " + err.Error()
	case c.Safe:
		pe.Message = "the request was sent but no answer came: " + err.Error()
	default:
		pe.Class = provider.Ambiguous
		pe.Message = "the request was sent but no answer came, so its outcome is unknown: " + err.Error()
	}
	scrubError(pe, c.Secrets)
	return pe
}

// scrubHeader scrubs the values of h, in place, of the call's Secrets: a
// provider may echo a credential in a header it uses as a request id.
func (c Call) scrubHeader(h http.Header) http.Header {
	if c.Secrets == nil {
		return h
	}
	for _, vs := range h {
		for i, v := range vs {
			vs[i] = c.Secrets.String(v)
		}
	}
	return h
}

// ScrubError returns err with secrets scrubbed from its text. A
// *provider.Error is scrubbed in place: its Message, Code and RequestID, and
// its Err when that one's text holds a secret (see below). Any other error
// whose text holds a secret is replaced the same way, by an error whose
// text is scrubbed and which unwraps to the original, so that errors.Is
// still sees through it (errors.As can reach the original's unscrubbed
// fields: print the outer error, not what As finds). A nil err or nil
// secrets change nothing.
func ScrubError(err error, secrets *redact.Secrets) error {
	if err == nil || secrets == nil {
		return err
	}
	if pe, ok := err.(*provider.Error); ok {
		scrubError(pe, secrets)
		return pe
	}
	return scrubText(err, secrets)
}

func scrubError(pe *provider.Error, secrets *redact.Secrets) {
	if secrets == nil {
		return
	}
	pe.Message = secrets.String(pe.Message)
	pe.Code = secrets.String(pe.Code)
	pe.RequestID = secrets.String(pe.RequestID)
	if pe.Err != nil {
		pe.Err = scrubText(pe.Err, secrets)
	}
}

// scrubText returns err, or an error of its text scrubbed that unwraps to
// it when the text holds a secret.
func scrubText(err error, secrets *redact.Secrets) error {
	text := err.Error()
	if scrubbed := secrets.String(text); scrubbed != text {
		return &scrubbedError{text: scrubbed, err: err}
	}
	return err
}

// scrubbedError is an error whose text was scrubbed of secrets.
type scrubbedError struct {
	text string
	err  error
}

func (e *scrubbedError) Error() string { return e.text }
func (e *scrubbedError) Unwrap() error { return e.err }

// neverSent reports whether err shows that no connection was made, so the
// request cannot have reached the provider.
func neverSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ClassOfStatus classifies a non-2xx HTTP status: 429 and 5xx are
// Transient, anything else Permanent.
func ClassOfStatus(status int) provider.Class {
	if status == http.StatusTooManyRequests || (status >= 500 && status <= 599) {
		return provider.Transient
	}
	return provider.Permanent
}

// RetryAfter returns the wait a Retry-After header asks for, given as
// seconds or as an HTTP date (measured from now), at most a day, or zero
// when the header is missing, unparseable or in the past.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		// Capped at a day, so that no value overflows a Duration.
		return time.Duration(min(max(secs, 0), 24*60*60)) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}

// EncodeJSON encodes v as a request body, without escaping HTML characters
// and without a trailing newline.
func EncodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// readBody reads r as io.ReadAll(io.LimitReader(r, limit+1)) does, but
// into one buffer of the announced length (plus one byte, to see a longer
// body) when the reply announces one within limit: no reader to allocate,
// no buffer grown and copied. announced < 0 means unknown.
func readBody(r io.Reader, announced, limit int64) ([]byte, error) {
	if announced < 0 || announced > limit {
		return io.ReadAll(io.LimitReader(r, limit+1))
	}
	buf := make([]byte, announced+1)
	n := 0
	for {
		m, err := r.Read(buf[n:])
		n += m
		switch {
		case err == io.EOF:
			return buf[:n], nil
		case err != nil:
			return buf[:n], err
		case n == len(buf):
			// Longer than announced: read on, to the same bound.
			rest, err := io.ReadAll(io.LimitReader(r, limit+1-int64(n)))
			return append(buf, rest...), err
		}
	}
}
