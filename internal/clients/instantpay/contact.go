package instantpay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/clients/provider"

	"github.com/contactrelay/contactrelay/internal/clients"
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
func (c *Client) Create(ctx context.Context, cmd contact.Command) (provider.Contact, error) {
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
	reply, err := c.send(ctx, createCall, http.MethodPost, profilePath, body)
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
		if err != nil {
			errs = append(errs, err)
		}
	})
	return c, errors.Join(errs...)
}
