package pik

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/clients"
	"github.com/contactrelay/contactrelay/internal/clients/provider"
)

// lookupPageSize is the pageSize a Lookup asks for: the value of the PIK
// docs' own example.
const lookupPageSize = 10

// listItemKeys are where the list reply may hold its contacts, under data.
var listItemKeys = []string{"list", "records", "rows", "items", "docs", "content", "results"}

// Lookup looks for the command's contact by its ContactCode, among the
// contacts PIK lists for that keyword
// (GET /api/v1/contact/list?pageNum=1&pageSize=10&keyword=<contactCode>);
// only an exact match of contactCode counts, so a keyword that PIK matches
// loosely, or ignores, never gives a false match. The list may come as data
// itself or under data.list, records, rows or items, with total, pages,
// pageNum or hasNextPage beside it (or another of the usual paging shapes):
// Lookup follows every page announced, up to LookupMaxPages pages and
// LookupTimeout.
//
// found is true with the contact as soon as a page holds a match; the
// Contact has Upstream contactCode, its identifiers and reconciled: true.
// found is false with a nil error only when every listed contact for the
// keyword was seen: see clients.ListWalk.Find for when that is.
//
// Every error is a *provider.Error, never Ambiguous (a lookup changes
// nothing), and satisfies errors.Is(err, provider.ErrIncompleteLookup):
// absence was not proven, and the caller must not create the contact on
// the strength of it. Its Class says whether reading again may help: a
// page that failed transiently (429, 5xx, a timeout) and a lookup that ran
// out of time are Transient; more than LookupMaxPages pages, a paging this
// client cannot follow and a page that could not be read for good are
// Permanent.
func (c *Client) Lookup(ctx context.Context, cmd contact.Command) (contact provider.Contact, found bool, err error) {
	call := clients.Call{Provider: Name, Op: "lookup", Safe: true}
	code := ContactCode(cmd)
	walk := clients.ListWalk{
		Call:     call,
		BaseURL:  c.baseURL,
		PageSize: lookupPageSize,
		MaxPages: c.lookupPages,
		Budget:   c.lookupTime,
		Scope:    "the contacts listed for keyword " + strconv.Quote(code),
		Fetch: func(ctx context.Context, req clients.PageRequest) (string, clients.ListPage, error) {
			return c.listPage(ctx, call, code, req)
		},
		Match: func(item json.RawMessage) bool {
			v, ok := clients.Scalar(contactFields(item)["contactCode"])
			return ok && v == any(code)
		},
	}
	item, found, err := walk.Find(ctx)
	if err != nil || !found {
		return provider.Contact{}, false, err
	}
	up := upstreamOf(contactFields(item), code)
	up["reconciled"] = true
	return provider.Contact{ID: code, Upstream: up}, true, nil
}

// listPage reads one page of the contacts listed for keyword: the page
// numbered, or the cursor, or a next link as it is.
func (c *Client) listPage(ctx context.Context, call clients.Call, keyword string, req clients.PageRequest) (string, clients.ListPage, error) {
	target := req.Target
	if target == "" {
		q := url.Values{"pageSize": {strconv.Itoa(lookupPageSize)}, "keyword": {keyword}}
		if req.Number > 0 {
			q.Set("pageNum", strconv.Itoa(req.Number))
		} else {
			q.Set(req.CursorParam, req.Cursor)
		}
		target = listPath + "?" + q.Encode()
	}
	reply, err := c.authorized(ctx, call, http.MethodGet, target, nil)
	if err != nil {
		return target, clients.ListPage{}, err
	}
	env, pe := c.outcome(call, reply)
	if pe != nil {
		return target, clients.ListPage{}, pe
	}
	page, err := clients.ParseListPage(reply.Body, listItemKeys...)
	if err != nil {
		return target, clients.ListPage{}, &provider.Error{
			Provider: Name, Op: call.Op, Class: provider.Permanent, HTTPStatus: reply.Status,
			Code: env.Code.String(), RequestID: reply.RequestID(),
			Message: "the contact list has an unexpected shape: " + err.Error(), Err: err,
		}
	}
	return target, page, nil
}
