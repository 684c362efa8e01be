package instantpay

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/clients"
	"github.com/contactrelay/contactrelay/internal/clients/provider"
	"github.com/contactrelay/contactrelay/internal/redact"
)

// lookupPageSize is the page size a Lookup asks for (as limit).
const lookupPageSize = 100

// listItemKeys are where a paged list reply may hold its contacts, under
// data: mongoose-paginate's docs, and the usual others.
var listItemKeys = []string{"docs", "items", "list", "records", "rows", "contacts", "results"}

// Lookup looks for the command's contact among the account's contacts: one
// whose email equals the command's regardless of case and whose mobile has
// the same digits (or, when the shorter has at least 10 digits, ends the
// other: a country code may be added or left out).
//
// The docs of GET /contacts/profile say nothing of paging, so Lookup
// assumes none of it: it asks for page=1&limit=100 and follows every page
// the replies announce, in whichever of the usual shapes (data as an array;
// data.docs with totalPages, page and hasNextPage as mongoose-paginate
// answers; data.items, list, records or rows with total or totalCount; a
// nextCursor sent back as cursor; a next link below the base URL). It
// narrows the list with email= when the address is plain (lower case,
// letters, digits and . _ - only), so that an API that filters by exact
// value or by pattern sees the address as it was created; it never sends
// the mobile, which an API may store normalised. Whatever the API does with
// these parameters, every contact listed is matched here.
//
// found is true with the contact as soon as a page holds a match; the
// Contact has Upstream contactId, userId (if listed) and reconciled: true.
// found is false with a nil error only when the whole list (as narrowed)
// was seen: see clients.ListWalk.Find for when that is. RNF (record not
// found) is an empty page.
//
// Every error is a *provider.Error, never Ambiguous (a lookup changes
// nothing), and satisfies errors.Is(err, provider.ErrIncompleteLookup):
// absence was not proven, and the caller must not create the contact on
// the strength of it. Its Class says whether reading again may help: a
// page that failed transiently (429, 5xx, a timeout) and a lookup that ran
// out of time are Transient; more than LookupMaxPages pages, a paging this
// client cannot follow and a page that could not be read for good are
// Permanent. The whole lookup takes at most LookupTimeout, and each reply
// at most 16 MiB.
func (c *Client) Lookup(ctx context.Context, cmd contact.Command) (contact provider.Contact, found bool, err error) {
	call := clients.Call{Provider: Name, Op: "lookup", Safe: true, MaxReplyBytes: maxListBytes}
	filter := url.Values{"limit": {strconv.Itoa(lookupPageSize)}}
	scope := "the account's contacts"
	if plainEmail(cmd.Email) {
		filter.Set("email", cmd.Email)
		scope = "the contacts listed for email " + redact.Email(cmd.Email)
	}
	walk := clients.ListWalk{
		Call:     call,
		BaseURL:  c.baseURL,
		PageSize: lookupPageSize,
		MaxPages: c.lookupPages,
		Budget:   c.lookupTime,
		Scope:    scope,
		Fetch: func(ctx context.Context, req clients.PageRequest) (string, clients.ListPage, error) {
			return c.listPage(ctx, call, filter, req)
		},
		Match: func(item json.RawMessage) bool {
			var listed contactData
			return json.Unmarshal(item, &listed) == nil && listed.ID != "" &&
				sameEmail(listed.Email.String(), cmd.Email) && sameMobile(listed.Mobile.String(), cmd.Mobile)
		},
	}
	item, found, err := walk.Find(ctx)
	if err != nil || !found {
		return provider.Contact{}, false, err
	}
	var listed contactData
	_ = json.Unmarshal(item, &listed) // Match decoded it already
	up := map[string]any{"contactId": listed.ID.String(), "reconciled": true}
	putScalar(up, "userId", listed.UserID)
	return provider.Contact{ID: listed.ID.String(), Upstream: up}, true, nil
}

// listPage reads one page of the contact list: the page numbered, or the
// cursor, with filter's parameters, or a next link as it is.
func (c *Client) listPage(ctx context.Context, call clients.Call, filter url.Values, req clients.PageRequest) (string, clients.ListPage, error) {
	target := req.Target
	if target == "" {
		q := url.Values{}
		for k, v := range filter {
			q[k] = v
		}
		if req.Number > 0 {
			q.Set("page", strconv.Itoa(req.Number))
		} else {
			q.Set(req.CursorParam, req.Cursor)
		}
		target = profilePath + "?" + q.Encode()
	}
	reply, err := c.send(ctx, call, http.MethodGet, target, nil)
	if err != nil {
		return target, clients.ListPage{}, err
	}
	env, perr := parseEnvelope(reply.Body)
	if reply.OK() && perr == nil && env.StatusCode == codeNotFound {
		return target, clients.ListPage{Total: -1, Count: -1}, nil
	}
	if !reply.OK() || perr != nil || env.StatusCode != codeSuccess {
		return target, clients.ListPage{}, failure(call, reply, env, perr)
	}
	page, err := clients.ParseListPage(reply.Body, listItemKeys...)
	if err != nil {
		pe := newError(call, reply, env)
		pe.Class = provider.Permanent
		pe.Message = "the contact list has an unexpected shape: " + err.Error()
		pe.Err = err
		return target, clients.ListPage{}, pe
	}
	return target, page, nil
}

// plainEmail reports whether an address reads the same to an API that
// compares it exactly, ignoring case, or as a pattern: lower case ASCII
// letters, digits, '.', '_', '-' and one '@'.
func plainEmail(s string) bool {
	if strings.Count(s, "@") != 1 {
		return false
	}
	for _, r := range s {
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9', r == '.', r == '_', r == '-', r == '@':
		default:
			return false
		}
	}
	return true
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
