package pik

import (
	"context"
	"net/http"
	"net/url"

	"github.com/contactrelay/contactrelay/internal/clients/provider"

	"github.com/contactrelay/contactrelay/internal/clients"
	"github.com/contactrelay/contactrelay/internal/events"
)

// Paths of the contact API.
const (
	createPath = "/api/v1/contact/create"
	listPath   = "/api/v1/contact/list"
)

// createBody returns the body of a create call: every field of cmd.PIK as
// it came (nested objects included), then the command's own fields mapped
// onto PIK's names, which win over pik fields of the same name.
func createBody(cmd events.Command, contactCode string) ([]byte, error) {
	fields := make(map[string]any, len(cmd.PIK)+5)
	for k, v := range cmd.PIK {
		fields[k] = v
	}
	fields["displayName"] = cmd.Name
	fields["email"] = cmd.Email
	fields["phone"] = cmd.Mobile
	if cmd.CompanyName != "" {
		fields["companyName"] = cmd.CompanyName
	}
	fields["contactCode"] = contactCode
	return clients.EncodeJSON(fields)
}

// Create creates the command's contact, under ContactCode(cmd). On success
// the Contact's ID is the contactCode PIK answers with (the one sent if it
// answers none), and Upstream holds contactCode and every identifier of the
// reply's data (scalar fields named id or ending in Id or _id). Every error
// is a *provider.Error; a request sent but not answered, and a 2xx
// reply that cannot be read, are Ambiguous, and the contact must be looked
// up before the call is retried.
func (c *Client) Create(ctx context.Context, cmd events.Command) (provider.Contact, error) {
	call := clients.Call{Provider: Name, Op: "create"}
	code := ContactCode(cmd)
	body, err := createBody(cmd, code)
	if err != nil {
		return provider.Contact{}, &provider.Error{Provider: Name, Op: call.Op, Class: provider.Permanent, Message: "cannot encode the request: " + err.Error(), Err: err}
	}
	reply, err := c.authorized(ctx, call, http.MethodPost, createPath, body)
	if err != nil {
		return provider.Contact{}, err
	}
	env, pe := c.outcome(call, reply)
	if pe != nil {
		return provider.Contact{}, pe
	}
	fields := contactFields(env.Data)
	if v, ok := clients.Scalar(fields["contactCode"]); ok {
		if s, isString := v.(string); isString {
			code = s
		}
	}
	return provider.Contact{ID: code, Upstream: upstreamOf(fields, code)}, nil
}

// Lookup looks for the command's contact by its ContactCode, among the
// contacts PIK lists for that keyword; only an exact match of contactCode
// counts. found is false when none matches. A found Contact has Upstream
// contactCode, its identifiers and reconciled: true. The list may come as
// data itself or under data.list, data.records, data.rows or data.items.
// Every error is a *provider.Error, never Ambiguous: a lookup changes
// nothing.
func (c *Client) Lookup(ctx context.Context, cmd events.Command) (contact provider.Contact, found bool, err error) {
	call := clients.Call{Provider: Name, Op: "lookup", Safe: true}
	code := ContactCode(cmd)
	path := listPath + "?pageNum=1&pageSize=10&keyword=" + url.QueryEscape(code)
	reply, err := c.authorized(ctx, call, http.MethodGet, path, nil)
	if err != nil {
		return provider.Contact{}, false, err
	}
	env, pe := c.outcome(call, reply)
	if pe != nil {
		return provider.Contact{}, false, pe
	}
	items, err := clients.Items(env.Data, "list", "records", "rows", "items")
	if err != nil {
		return provider.Contact{}, false, &provider.Error{
			Provider: Name, Op: call.Op, Class: provider.Transient, HTTPStatus: reply.Status,
			Code: env.Code.String(), RequestID: reply.RequestID(),
			Message: "the contact list has an unexpected shape: " + err.Error(), Err: err,
		}
	}
	for _, item := range items {
		fields := contactFields(item)
		if v, ok := clients.Scalar(fields["contactCode"]); !ok || v != any(code) {
			continue
		}
		up := upstreamOf(fields, code)
		up["reconciled"] = true
		return provider.Contact{ID: code, Upstream: up}, true, nil
	}
	return provider.Contact{}, false, nil
}
