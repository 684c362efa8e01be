package pik

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/contactrelay/contactrelay/internal/clients/provider"

	"github.com/contactrelay/contactrelay/internal/clients"
)

// codeOK is the body code of a successful PIK reply.
const codeOK = "200"

// envelope is the reply every PIK API answers with.
type envelope struct {
	Code    clients.Text    `json:"code"`
	Message clients.Text    `json:"message"`
	Msg     clients.Text    `json:"msg"`
	Data    json.RawMessage `json:"data"`
}

// parseEnvelope decodes a reply body.
func parseEnvelope(body []byte) (envelope, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return envelope{}, fmt.Errorf("decode reply: %w", err)
	}
	return env, nil
}

// message returns the reply's explanation, under message or msg.
func (e envelope) message() string {
	if e.Message != "" {
		return e.Message.String()
	}
	return e.Msg.String()
}

// unauthorized reports whether a reply says the token was not accepted.
func unauthorized(reply clients.Reply) bool {
	if reply.Status == http.StatusUnauthorized {
		return true
	}
	env, err := parseEnvelope(reply.Body)
	return err == nil && env.Code == "401"
}

// transientCode reports whether a body code means a failure worth retrying
// unchanged: 429 or 5xx.
func transientCode(code string) bool {
	n, err := strconv.Atoi(strings.TrimSpace(code))
	return err == nil && (n == http.StatusTooManyRequests || (n >= 500 && n <= 599))
}

// outcome reads the reply of a create or lookup call: its envelope, and a
// provider.Error unless it is a success (HTTP 2xx and body code 200). A
// non-2xx status decides the class (429 and 5xx Transient, the rest
// Permanent); a 2xx reply without a readable code says something happened
// and is Ambiguous; a body code other than 200 is Transient for 429 and 5xx
// and Permanent otherwise. For a Safe call (a lookup) Ambiguous becomes
// Transient: a lookup changes nothing.
func (c *Client) outcome(call clients.Call, reply clients.Reply) (envelope, *provider.Error) {
	env, perr := parseEnvelope(reply.Body)
	pe := replyError(call, reply, env)
	pe.Message = env.message()
	switch {
	case !reply.OK():
		pe.Class = clients.ClassOfStatus(reply.Status)
	case perr != nil:
		pe.Class = provider.Ambiguous
		pe.Message = "the reply is not a PIK reply: " + perr.Error()
		pe.Err = perr
	case env.Code == "":
		pe.Class = provider.Ambiguous
		pe.Message = "the reply has no code"
	case env.Code != codeOK:
		pe.Class = provider.Permanent
		if transientCode(env.Code.String()) {
			pe.Class = provider.Transient
		}
	default:
		return env, nil
	}
	if call.Safe && pe.Class == provider.Ambiguous {
		pe.Class = provider.Transient
	}
	if pe.Message == "" {
		pe.Message = http.StatusText(reply.Status)
	}
	c.retryAfter(pe, reply)
	return env, pe
}

// replyError is the provider.Error of a reply that is not a success, with
// what the reply says; the caller classifies it and words the message.
func replyError(call clients.Call, reply clients.Reply, env envelope) *provider.Error {
	return &provider.Error{
		Provider:   Name,
		Op:         call.Op,
		HTTPStatus: reply.Status,
		Code:       env.Code.String(),
		RequestID:  reply.RequestID(),
	}
}

// retryAfter sets how long a transient failure asks to wait, from the
// reply's Retry-After header.
func (c *Client) retryAfter(pe *provider.Error, reply clients.Reply) {
	if pe.Class == provider.Transient {
		pe.RetryAfter = clients.RetryAfter(reply.Header, c.now())
	}
}

// contactFields decodes a contact object; anything else gives nil.
func contactFields(raw json.RawMessage) map[string]json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil {
		return nil
	}
	return fields
}

// upstreamOf returns the contact's identifiers for an event: contactCode,
// and every scalar field whose key is "id" or ends in "Id" or "_id".
func upstreamOf(fields map[string]json.RawMessage, contactCode string) map[string]any {
	up := map[string]any{"contactCode": contactCode}
	for k, raw := range fields {
		if k != "id" && !strings.HasSuffix(k, "Id") && !strings.HasSuffix(k, "_id") {
			continue
		}
		if v, ok := clients.Scalar(raw); ok {
			up[k] = v
		}
	}
	return up
}
