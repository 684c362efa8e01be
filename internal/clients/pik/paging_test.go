package pik_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/clients/pik"
	"github.com/contactrelay/contactrelay/internal/clients/provider"
	"github.com/contactrelay/contactrelay/internal/sandbox"
)

// pagedList answers GET /api/v1/contact/list a page at a time, honouring
// pageNum and pageSize but ignoring the keyword: n contacts, the test
// command's at index at (none if negative), in one of the shapes PIK's
// reply may take.
func pagedList(shape string, n, at, failPage int) http.HandlerFunc {
	code := pik.ContactCode(testCommand())
	contacts := make([]string, n)
	for i := range contacts {
		contacts[i] = fmt.Sprintf(`{"id":%d,"contactCode":"%sX%d","displayName":"Other %d"}`, i+1, code, i, i)
	}
	if at >= 0 {
		contacts[at] = `{"id":77,"contactCode":"` + code + `","contactId":"c-77"}`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		pageNum, _ := strconv.Atoi(q.Get("pageNum"))
		size, _ := strconv.Atoi(q.Get("pageSize"))
		if pageNum == failPage {
			sandbox.WriteReply(w, http.StatusOK, `{"code":503,"message":"busy"}`)
			return
		}
		from := min(n, (pageNum-1)*size)
		to := min(n, from+size)
		items := "[" + strings.Join(contacts[from:to], ",") + "]"
		pages := (n + size - 1) / size
		var data string
		switch shape {
		case "array":
			data = items
		case "list with total": // PageHelper
			data = fmt.Sprintf(`{"list":%s,"total":%d,"pageNum":%d,"pageSize":%d,"size":%d,"pages":%d,"hasNextPage":%t,"isLastPage":%t,"nextPage":%d}`,
				items, n, pageNum, size, to-from, pages, to < n, to >= n, min(pageNum+1, pages)*btoi(to < n))
		case "records with pages": // MyBatis-Plus IPage
			data = fmt.Sprintf(`{"records":%s,"total":%d,"size":%d,"current":%d,"pages":%d}`, items, n, size, pageNum, pages)
		case "rows with total":
			data = fmt.Sprintf(`{"rows":%s,"total":%d}`, items, n)
		case "items with an offset":
			data = fmt.Sprintf(`{"items":%s,"offset":%d}`, items, from)
		}
		sandbox.WriteReply(w, http.StatusOK, `{"code":200,"message":"success","data":`+data+`}`)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func newPagingClient(tb testing.TB, baseURL string, maxPages int) *pik.Client {
	tb.Helper()
	c, err := pik.New(pik.Config{BaseURL: baseURL, AppID: testAppID, AppSecret: testSecret, Timeout: time.Second, LookupMaxPages: maxPages})
	require.NoError(tb, err, "building the client")
	return c
}

func TestLookupFollowsPages(t *testing.T) {
	for _, shape := range []string{"array", "list with total", "records with pages", "rows with total"} {
		for _, tc := range []struct {
			name      string
			at        int
			wantFound bool
			wantPages int
		}{
			{name: "match on page 3", at: 25, wantFound: true, wantPages: 3},
			// 50 contacts, 10 a page: a bare array needs a short (empty)
			// page to end; the others announce their end.
			{name: "absent from every page", at: -1, wantPages: map[bool]int{true: 6, false: 5}[shape == "array"]},
		} {
			t.Run(shape+"/"+tc.name, func(t *testing.T) {
				s := newStandIn(t, &standIn{List: pagedList(shape, 50, tc.at, 0)})
				contact, found, err := newPagingClient(t, s.URL, 0).Lookup(context.Background(), testCommand())
				require.NoError(t, err, "a list read whole is an answer")
				assert.Equal(t, tc.wantFound, found, "found")
				if tc.wantFound {
					assert.Equal(t, pik.ContactCode(testCommand()), contact.ID, "the match beyond page 1")
					assert.Equal(t, "c-77", contact.Upstream["contactId"], "its identifiers")
				}
				lists := s.requests("/api/v1/contact/list")
				require.Len(t, lists, tc.wantPages, "pages read")
				for i, req := range lists {
					q, err := url.ParseQuery(req.RawQuery)
					require.NoError(t, err, "the query should parse")
					assert.Equal(t, url.Values{"pageNum": {strconv.Itoa(i + 1)}, "pageSize": {"10"},
						"keyword": {pik.ContactCode(testCommand())}}, q, "page %d is asked for by number, narrowed by keyword", i+1)
				}
			})
		}
	}
}

func TestLookupIncomplete(t *testing.T) {
	tests := []struct {
		name      string
		list      http.HandlerFunc
		maxPages  int
		wantClass provider.Class
		wantCode  string
		wantInMsg string
		wantPages int
	}{
		{name: "more pages than the bound", list: pagedList("list with total", 100, -1, 0), maxPages: 3,
			wantClass: provider.Permanent, wantInMsg: "more pages than the 3", wantPages: 3},
		{name: "a paging shape it cannot follow", list: pagedList("items with an offset", 50, -1, 0),
			wantClass: provider.Permanent, wantInMsg: "cannot follow (offset)", wantPages: 1},
		{name: "page 3 fails", list: pagedList("records with pages", 50, -1, 3),
			wantClass: provider.Transient, wantCode: "503", wantInMsg: "page 3 could not be read (busy)", wantPages: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStandIn(t, &standIn{List: tt.list})
			_, found, err := newPagingClient(t, s.URL, tt.maxPages).Lookup(context.Background(), testCommand())
			assert.False(t, found, "nothing found")
			require.Error(t, err, "absence must not be concluded from a partial view")
			assert.True(t, errors.Is(err, provider.ErrIncompleteLookup), "errors.Is(err, ErrIncompleteLookup): %v", err)
			pe := asProviderError(t, err)
			assert.Equal(t, tt.wantClass, pe.Class, "class of %v", err)
			assert.Equal(t, tt.wantCode, pe.Code, "code of %v", err)
			assert.Contains(t, pe.Message, tt.wantInMsg, "the message says why")
			assert.Contains(t, pe.Message, "keyword \""+pik.ContactCode(testCommand())+"\"", "the message says what was looked at")
			assert.Contains(t, pe.Message, "the contact may exist", "the message says what it means")
			assert.NotContains(t, err.Error(), testCommand().Email, "no email")
			assert.Len(t, s.requests("/api/v1/contact/list"), tt.wantPages, "pages requested")
		})
	}
}
