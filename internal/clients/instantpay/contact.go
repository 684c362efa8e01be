package instantpay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/contactrelay/contactrelay/internal/clients/provider"

	"github.com/contactrelay/contactrelay/internal/clients"
	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/jsonscan"
)

// createRequest is the body of POST /contacts/profile.
type createRequest struct {
	Name        string      `json:"name"`
	Email       string      `json:"email"`
	Mobile      string      `json:"mobile"`
	CompanyName string      `json:"companyName,omitempty"`
	TagDetails  []tagDetail `json:"tagDetails"`
}

type tagDetail struct {
	TagID string `json:"tagId"`
}

// contactData is the part of a contact InstantPay answers with that the
// service reads, in the create reply and in the list.
type contactData struct {
	ID     clients.Text    `json:"_id"`
	UserID json.RawMessage `json:"userId"`
	Email  clients.Text    `json:"email"`
	Mobile clients.Text    `json:"mobile"`
}

// Create creates the command's contact. On success the Contact's ID is
// InstantPay's data._id, and Upstream holds contactId, userId, ipayUuid,
// orderId, environment and timestamp, those that are not empty. Every error
// is a *provider.Error: TUP (pending), a 2xx reply that cannot be
// read and a request sent but not answered are Ambiguous, and the contact
// must be looked up before the call is retried.
func (c *Client) Create(ctx context.Context, cmd events.Command) (provider.Contact, error) {
	createCall := clients.Call{Provider: Name, Op: "create"}
	body, err := clients.EncodeJSON(createRequest{
		Name:        cmd.Name,
		Email:       cmd.Email,
		Mobile:      cmd.Mobile,
		CompanyName: cmd.CompanyName,
		TagDetails:  []tagDetail{{TagID: cmd.TagID}},
	})
	if err != nil {
		return provider.Contact{}, &provider.Error{Provider: Name, Op: createCall.Op, Class: provider.Permanent, Message: "cannot encode the request", Err: err}
	}
	reply, err := c.send(ctx, createCall, http.MethodPost, body)
	if err != nil {
		return provider.Contact{}, err
	}
	env, perr := parseEnvelope(reply.Body)
	if !reply.OK() || perr != nil || env.StatusCode != codeSuccess {
		return provider.Contact{}, failure(createCall, reply, env, perr)
	}
	data, err := parseContact(env.Data)
	if err != nil || data.ID == "" {
		pe := newError(createCall, reply, env)
		pe.Class = provider.Ambiguous
		pe.Message = "InstantPay answered " + codeSuccess + " without a contact id (data._id)"
		pe.Err = err
		return provider.Contact{}, pe
	}
	up := map[string]any{"contactId": data.ID.String()}
	putScalar(up, "userId", data.UserID)
	putText(up, "ipayUuid", env.IpayUUID)
	putText(up, "orderId", env.OrderID)
	putText(up, "environment", env.Environment)
	putText(up, "timestamp", env.Timestamp)
	return provider.Contact{ID: data.ID.String(), Upstream: up}, nil
}

// Lookup looks for the command's contact among the account's contacts: one
// whose email equals the command's regardless of case and whose mobile has
// the same digits (or, when the shorter has at least 10 digits, ends the
// other: a country code may be added or left out). found is false when no
// contact matches, and when InstantPay answers RNF (record not found). The
// list holds every contact of the account, so its reply may be up to 16 MiB. A found Contact has Upstream contactId, userId (if
// listed) and reconciled: true. Every error is a *provider.Error,
// never Ambiguous: a lookup changes nothing.
func (c *Client) Lookup(ctx context.Context, cmd events.Command) (contact provider.Contact, found bool, err error) {
	lookupCall := clients.Call{Provider: Name, Op: "lookup", Safe: true, MaxReplyBytes: maxListBytes}
	reply, err := c.send(ctx, lookupCall, http.MethodGet, nil)
	if err != nil {
		return provider.Contact{}, false, err
	}
	env, perr := parseEnvelope(reply.Body)
	if reply.OK() && perr == nil && env.StatusCode == codeNotFound {
		return provider.Contact{}, false, nil
	}
	if !reply.OK() || perr != nil || env.StatusCode != codeSuccess {
		return provider.Contact{}, false, failure(lookupCall, reply, env, perr)
	}
	items, err := clients.Items(env.Data, "contacts", "list", "records", "rows", "items", "docs")
	if err != nil {
		pe := newError(lookupCall, reply, env)
		pe.Class = provider.Transient
		pe.Message = "the contact list has an unexpected shape: " + err.Error()
		pe.Err = err
		return provider.Contact{}, false, pe
	}
	for _, item := range items {
		var listed contactData
		if json.Unmarshal(item, &listed) != nil || listed.ID == "" {
			continue // not a contact this service could have created
		}
		if !sameEmail(listed.Email.String(), cmd.Email) || !sameMobile(listed.Mobile.String(), cmd.Mobile) {
			continue
		}
		up := map[string]any{"contactId": listed.ID.String(), "reconciled": true}
		putScalar(up, "userId", listed.UserID)
		return provider.Contact{ID: listed.ID.String(), Upstream: up}, true, nil
	}
	return provider.Contact{}, false, nil
}

func sameEmail(a, b string) bool {
	return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
}

// sameMobile compares two phone numbers by their digits: equal, or the
// shorter, with at least 10 digits, ending the longer.
func sameMobile(a, b string) bool {
	a, b = digits(a), digits(b)
	if a == "" || b == "" {
		return false
	}
	if len(a) > len(b) {
		a, b = b, a
	}
	return a == b || (len(a) >= 10 && strings.HasSuffix(b, a))
}

func digits(s string) string {
	return strings.Map(func(r rune) rune {
		if '0' <= r && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// parseContact reads the members of a contact that the service uses,
// walking the object in place (it is read on every create).
func parseContact(raw json.RawMessage) (contactData, error) {
	var (
		c    contactData
		errs []error
	)
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return c, nil // null, or not a contact: no id
	}
	jsonscan.EachMember(raw, func(k, v []byte) {
		var err error
		switch string(k) {
		case "_id":
			c.ID, err = clients.TextOf(v)
		case "userId":
			c.UserID = json.RawMessage(v)
		case "email":
			c.Email, err = clients.TextOf(v)
		case "mobile":
			c.Mobile, err = clients.TextOf(v)
		}
		errs = append(errs, err)
	})
	return c, errors.Join(errs...)
}
