package instantpay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/clients/instantpay"
	"github.com/contactrelay/contactrelay/internal/clients/provider"
	"github.com/contactrelay/contactrelay/internal/sandbox"
)

// pagedList is an InstantPay stand-in whose contact list comes a page at a
// time, in one of the shapes paging APIs use.
type pagedList struct {
	shape    string            // see page
	contacts []json.RawMessage // the whole list, in order
	maxLimit int               // the largest limit honoured; 0 means any
	failPage int               // a page number answered with HTTP 503
	hold     chan struct{}     // when set, pages after the first wait for it or the client
	linkHost string            // for shape "link": the host the next link names, if not ours

	mu      sync.Mutex
	queries []url.Values
}

// serve answers GET /contacts/profile with one page.
func (l *pagedList) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	l.mu.Lock()
	l.queries = append(l.queries, q)
	n := len(l.queries)
	l.mu.Unlock()
	if l.hold != nil && n > 1 {
		select {
		case <-l.hold:
		case <-r.Context().Done():
			return
		}
	}
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 || (l.maxLimit > 0 && limit > l.maxLimit) {
		limit = l.maxLimit
	}
	pageNum, _ := strconv.Atoi(q.Get("page"))
	if pageNum <= 0 {
		pageNum = 1
	}
	from := (pageNum - 1) * limit
	if c := q.Get("cursor"); c != "" {
		from, _ = strconv.Atoi(strings.TrimPrefix(c, "after-"))
	}
	if l.failPage == pageNum {
		sandbox.Reply(http.StatusServiceUnavailable, `{"statuscode":"ISE","status":"Service Unavailable"}`)(w, r)
		return
	}
	from = min(from, len(l.contacts))
	to := min(from+limit, len(l.contacts))
	items, _ := json.Marshal(l.contacts[from:to])
	total := len(l.contacts)
	pages := (total + limit - 1) / limit
	more := to < total
	var data string
	switch l.shape {
	case "array": // page and limit honoured, nothing announced
		data = string(items)
	case "array ignoring page": // the first page whatever is asked
		first, _ := json.Marshal(l.contacts[:min(limit, total)])
		data = string(first)
	case "docs": // mongoose-paginate
		next := "null"
		if more {
			next = strconv.Itoa(pageNum + 1)
		}
		data = fmt.Sprintf(`{"docs":%s,"totalDocs":%d,"limit":%d,"page":%d,"totalPages":%d,"pagingCounter":%d,`+
			`"hasPrevPage":%t,"hasNextPage":%t,"prevPage":null,"nextPage":%s}`,
			items, total, limit, pageNum, pages, from+1, pageNum > 1, more, next)
	case "items with total":
		data = fmt.Sprintf(`{"items":%s,"total":%d}`, items, total)
	case "records with totalCount":
		data = fmt.Sprintf(`{"records":%s,"totalCount":%d,"pageSize":%d}`, items, total, limit)
	case "cursor":
		next := `null`
		if more {
			next = fmt.Sprintf(`"after-%d"`, to)
		}
		data = fmt.Sprintf(`{"items":%s,"nextCursor":%s}`, items, next)
	case "link":
		next := `null`
		if more {
			next = fmt.Sprintf(`"%s/contacts/profile?page=%d&limit=%d"`, l.linkHost, pageNum+1, limit)
		}
		data = fmt.Sprintf(`{"list":%s,"links":{"next":%s}}`, items, next)
	case "offset": // paging this client cannot follow
		data = fmt.Sprintf(`{"items":%s,"offset":%d}`, items, from)
	}
	sandbox.Reply(http.StatusOK, listReply(data))(w, r)
}

func (l *pagedList) pagesRead() []url.Values {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]url.Values(nil), l.queries...)
}

// contactsWith returns n contacts that are not the test command's, with
// the command's own (matching by email and mobile) at index at, unless at
// is negative.
func contactsWith(n, at int) []json.RawMessage {
	out := make([]json.RawMessage, n)
	for i := range out {
		out[i] = json.RawMessage(fmt.Sprintf(`{"_id":"%024x","email":"user%d@example.com","mobile":"98%08d","tagId":[]}`, i+1, i, i))
	}
	if at >= 0 {
		out[at] = json.RawMessage(`{"_id":"645b283b9b2e5a7f1c0d3e4f","userId":189590,"email":"sample@example.com","mobile":"7428585742"}`)
	}
	return out
}

func newPagingClient(tb testing.TB, baseURL string, maxPages int, lookupTimeout time.Duration) *instantpay.Client {
	tb.Helper()
	c, err := instantpay.New(instantpay.Config{
		BaseURL:        baseURL,
		ClientID:       testClientID,
		ClientSecret:   testSecret,
		Timeout:        time.Second,
		LookupMaxPages: maxPages,
		LookupTimeout:  lookupTimeout,
	})
	require.NoError(tb, err, "building the client")
	return c
}

func serveList(tb testing.TB, l *pagedList) string {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(l.serve))
	tb.Cleanup(srv.Close)
	if l.hold != nil {
		tb.Cleanup(func() { close(l.hold) }) // runs before srv.Close
	}
	return srv.URL
}

func TestLookupFollowsPages(t *testing.T) {
	// Every shape but the bare array pages 100 contacts 20 at a time,
	// whatever limit is asked for. A bare array announces nothing, so it is
	// complete only when a page is short of the limit asked for (100): that
	// stand-in honours it and holds 500 contacts.
	shapes := []struct {
		shape           string
		contacts, limit int
		absentPages     int
	}{
		{"array", 500, 100, 6},
		{"docs", 100, 20, 5},
		{"items with total", 100, 20, 5},
		{"records with totalCount", 100, 20, 5},
		{"cursor", 100, 20, 5},
		{"link", 100, 20, 5},
	}
	for _, sh := range shapes {
		for _, tc := range []struct {
			name      string
			at        int // index of the command's contact, -1 for none
			wantFound bool
			wantPages int
		}{
			{name: "match on page 3", at: 2*sh.limit + 5, wantFound: true, wantPages: 3},
			{name: "absent from every page", at: -1, wantPages: sh.absentPages},
		} {
			t.Run(sh.shape+"/"+tc.name, func(t *testing.T) {
				l := &pagedList{shape: sh.shape, contacts: contactsWith(sh.contacts, tc.at), maxLimit: sh.limit}
				base := serveList(t, l)
				cmd := testCommand()
				cmd.Email = "sample@example.com" // plain: sent as a filter
				contact, found, err := newPagingClient(t, base, 0, 0).Lookup(context.Background(), cmd)
				require.NoError(t, err, "a list read whole is an answer")
				assert.Equal(t, tc.wantFound, found, "found")
				if tc.wantFound {
					assert.Equal(t, "645b283b9b2e5a7f1c0d3e4f", contact.ID, "the match beyond page 1")
					assert.Equal(t, true, contact.Upstream["reconciled"], "reconciled")
				}
				got := l.pagesRead()
				assert.Len(t, got, tc.wantPages, "pages read")
				assert.Equal(t, "sample@example.com", got[0].Get("email"), "the list is narrowed by email")
				assert.Equal(t, "100", got[0].Get("limit"), "a page size is asked for")
				assert.Empty(t, got[0].Get("mobile"), "the mobile is never sent as a filter")
			})
		}
	}
}

func TestLookupIgnoredFilterNeverMatchesOthers(t *testing.T) {
	// The stand-in ignores email=: every contact is listed, none is ours.
	l := &pagedList{shape: "docs", contacts: contactsWith(60, -1), maxLimit: 20}
	cmd := testCommand()
	cmd.Email = "user3@example.com" // one listed contact has it, with another mobile
	_, found, err := newPagingClient(t, serveList(t, l), 0, 0).Lookup(context.Background(), cmd)
	require.NoError(t, err, "a list read whole is an answer")
	assert.False(t, found, "a contact with the same email but another mobile is not the command's")
	assert.Len(t, l.pagesRead(), 3, "every page is read")
}

func TestLookupMixedCaseEmailIsNotSentAsFilter(t *testing.T) {
	l := &pagedList{shape: "docs", contacts: contactsWith(30, 25), maxLimit: 20}
	_, found, err := newPagingClient(t, serveList(t, l), 0, 0).Lookup(context.Background(), testCommand())
	require.NoError(t, err, "a list read whole is an answer")
	assert.True(t, found, "matched ignoring case")
	assert.False(t, l.pagesRead()[0].Has("email"), "an address an API might compare by case is not sent as a filter")
}

func TestLookupIncomplete(t *testing.T) {
	tests := []struct {
		name      string
		list      *pagedList
		maxPages  int
		budget    time.Duration
		wantClass provider.Class
		wantInMsg string
		wantPages int
	}{
		{
			name:      "more pages than the bound",
			list:      &pagedList{shape: "docs", contacts: contactsWith(200, -1), maxLimit: 20},
			maxPages:  4,
			wantClass: provider.Permanent, wantInMsg: "more pages than the 4", wantPages: 4,
		},
		{
			name:      "a paging shape it cannot follow",
			list:      &pagedList{shape: "offset", contacts: contactsWith(250, -1), maxLimit: 100},
			wantClass: provider.Permanent, wantInMsg: "cannot follow (offset)", wantPages: 1,
		},
		{
			name:      "a full array whose pages repeat",
			list:      &pagedList{shape: "array ignoring page", contacts: contactsWith(250, -1), maxLimit: 100},
			wantClass: provider.Permanent, wantInMsg: "repeated an earlier one", wantPages: 2,
		},
		{
			name:      "page 3 fails",
			list:      &pagedList{shape: "docs", contacts: contactsWith(100, -1), maxLimit: 20, failPage: 3},
			wantClass: provider.Transient, wantInMsg: "page 3 could not be read", wantPages: 3,
		},
		{
			name:      "a next link to another host",
			list:      &pagedList{shape: "link", contacts: contactsWith(100, -1), maxLimit: 20, linkHost: "https://elsewhere.example"},
			wantClass: provider.Permanent, wantInMsg: "leads away from the API", wantPages: 1,
		},
		{
			name:      "the time runs out",
			list:      &pagedList{shape: "docs", contacts: contactsWith(100, -1), maxLimit: 20, hold: make(chan struct{})},
			budget:    100 * time.Millisecond,
			wantClass: provider.Transient, wantInMsg: "time (100ms) ran out", wantPages: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := testCommand()
			cmd.Email = "sample@example.com"
			_, found, err := newPagingClient(t, serveList(t, tt.list), tt.maxPages, tt.budget).Lookup(context.Background(), cmd)
			assert.False(t, found, "nothing found")
			require.Error(t, err, "absence must not be concluded from a partial view")
			assert.True(t, errors.Is(err, provider.ErrIncompleteLookup), "errors.Is(err, ErrIncompleteLookup): %v", err)
			pe := asProviderError(t, err)
			assert.Equal(t, tt.wantClass, pe.Class, "class of %v", err)
			assert.Equal(t, "lookup", pe.Op, "op")
			assert.Contains(t, pe.Message, tt.wantInMsg, "the message says why")
			assert.Contains(t, pe.Message, "the contact may exist", "the message says what it means")
			assert.Contains(t, pe.Message, "s***@example.com", "the message says what was looked at, masked")
			assert.NotContains(t, err.Error(), "sample@example.com", "no email unmasked")
			assert.NotContains(t, err.Error(), "7428585742", "no mobile")
			assert.Len(t, tt.list.pagesRead(), tt.wantPages, "pages requested")
		})
	}
	t.Run("a failing page keeps its status", func(t *testing.T) {
		l := &pagedList{shape: "docs", contacts: contactsWith(100, -1), maxLimit: 20, failPage: 3}
		_, _, err := newPagingClient(t, serveList(t, l), 0, 0).Lookup(context.Background(), testCommand())
		pe := asProviderError(t, err)
		assert.Equal(t, http.StatusServiceUnavailable, pe.HTTPStatus, "HTTP status of page 3")
		assert.Equal(t, "ISE", pe.Code, "code of page 3")
		assert.Contains(t, pe.Message, "2 pages (40 entries of the 5 pages, 100 entries announced)", "what was read")
	})
}
