package instantpay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/contactrelay/contactrelay/internal/clients/provider"

	"github.com/contactrelay/contactrelay/internal/clients"
	"github.com/contactrelay/contactrelay/internal/jsonscan"
)

// Status codes with a meaning of their own; the others are failures.
const (
	codeSuccess  = "TXN" // transaction successful
	codePending  = "TUP" // transaction under process
	codeNotFound = "RNF" // record not found
)

// envelope is the reply every InstantPay API answers with.
type envelope struct {
	StatusCode  clients.Text    `json:"statuscode"`
	ActCode     clients.Text    `json:"actcode"`
	Status      clients.Text    `json:"status"`
	Data        json.RawMessage `json:"data"`
	Timestamp   clients.Text    `json:"timestamp"`
	IpayUUID    clients.Text    `json:"ipay_uuid"`
	OrderID     clients.Text    `json:"orderid"`
	Environment clients.Text    `json:"environment"`
}

// parseEnvelope decodes a reply body; one without a statuscode is not an
// InstantPay reply.
func parseEnvelope(body []byte) (envelope, error) {
	body = bytes.TrimSpace(body)
	if !json.Valid(body) || len(body) == 0 || body[0] != '{' {
		var v envelope
		err := json.Unmarshal(body, &v) // for its message
		if err == nil {
			err = errors.New("not a JSON object")
		}
		return envelope{}, fmt.Errorf("decode reply: %w", err)
	}
	// Walk the members in place: replies are read on every call.
	var (
		env  envelope
		errs []error
	)
	text := func(dst *clients.Text, v []byte) {
		t, err := clients.TextOf(v)
		*dst = t
		if err != nil {
			errs = append(errs, err)
		}
	}
	jsonscan.EachMember(body, func(k, v []byte) {
		switch string(k) {
		case "statuscode":
			text(&env.StatusCode, v)
		case "actcode":
			text(&env.ActCode, v)
		case "status":
			text(&env.Status, v)
		case "data":
			env.Data = v
		case "timestamp":
			text(&env.Timestamp, v)
		case "ipay_uuid":
			text(&env.IpayUUID, v)
		case "orderid":
			text(&env.OrderID, v)
		case "environment":
			text(&env.Environment, v)
		}
	})
	if err := errors.Join(errs...); err != nil {
		return envelope{}, fmt.Errorf("decode reply: %w", err)
	}
	if env.StatusCode == "" {
		return envelope{}, errors.New("the reply has no statuscode")
	}
	return env, nil
}

// classOfCode classifies a failed statuscode. Pending is Ambiguous: the
// contact may be created yet, so the caller looks it up before retrying.
// System-side codes and any status that says to try later are Transient;
// parameter, credential and account codes, and codes not known, are
// Permanent.
func classOfCode(code, status string) provider.Class {
	switch code {
	case codePending:
		return provider.Ambiguous
	case "ISE", "IPE", "SPE", "SPD", "TSU", "USM":
		return provider.Transient
	}
	s := strings.ToLower(status)
	if strings.Contains(s, "try later") || strings.Contains(s, "try again") || strings.Contains(s, "try after") {
		return provider.Transient
	}
	return provider.Permanent
}

// newError returns a provider.Error for a reply, with the fields every
// failure shares filled in and no class yet.
func newError(call clients.Call, reply clients.Reply, env envelope) *provider.Error {
	pe := &provider.Error{
		Provider:   Name,
		Op:         call.Op,
		HTTPStatus: reply.Status,
		Code:       env.StatusCode.String(),
		Message:    env.Status.String(),
		RequestID:  firstNonEmpty(env.IpayUUID.String(), env.OrderID.String(), reply.RequestID()),
	}
	return pe
}

// failure classifies a reply that is not a success. parseErr is the error
// of parsing its body, if any. The HTTP status decides when it is not 2xx;
// a 2xx reply that cannot be read says something happened, so it is
// Ambiguous; otherwise the statuscode decides. For a Safe call (a lookup)
// Ambiguous becomes Transient: a GET changes nothing.
func failure(call clients.Call, reply clients.Reply, env envelope, parseErr error) *provider.Error {
	pe := newError(call, reply, env)
	switch {
	case !reply.OK():
		pe.Class = clients.ClassOfStatus(reply.Status)
		if pe.Message == "" {
			pe.Message = http.StatusText(reply.Status)
		}
	case parseErr != nil:
		pe.Class = provider.Ambiguous
		pe.Message = "the reply is not an InstantPay reply: " + parseErr.Error()
		pe.Err = parseErr
	default:
		pe.Class = classOfCode(pe.Code, pe.Message)
	}
	if call.Safe && pe.Class == provider.Ambiguous {
		pe.Class = provider.Transient
	}
	if pe.Class == provider.Transient {
		pe.RetryAfter = clients.RetryAfter(reply.Header, time.Now())
	}
	return pe
}

// putText sets up[key] to v unless v is empty.
func putText(up map[string]any, key string, v clients.Text) {
	if v != "" {
		up[key] = v.String()
	}
}

// putScalar sets up[key] to the scalar in raw, if there is one.
func putScalar(up map[string]any, key string, raw json.RawMessage) {
	if v, ok := clients.Scalar(raw); ok {
		up[key] = v
	}
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
