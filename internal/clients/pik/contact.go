package pik

import (
	"context"
	"net/http"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/clients/provider"

	"github.com/contactrelay/contactrelay/internal/clients"
)

// Paths of the contact API.
const (
	createPath = "/api/v1/contact/create"
	listPath   = "/api/v1/contact/list"
)

// createBody returns the body of a create call: every field of cmd.PIK as
// it came (nested objects included), then the command's own fields mapped
// onto PIK's names, which win over pik fields of the same name.
func createBody(cmd contact.Command, contactCode string) ([]byte, error) {
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
func (c *Client) Create(ctx context.Context, cmd contact.Command) (provider.Contact, error) {
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
