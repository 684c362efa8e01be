package sandbox

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fillInstantPay creates n contacts user0@example.com, user1@… in order.
func fillInstantPay(t *testing.T, srv string, client *http.Client, n int) {
	t.Helper()
	for i := range n {
		a := mustCall(t, client, http.MethodPost, srv+"/contacts/profile", instantPayHeaders(),
			instantPayContact("User", fmt.Sprintf("user%d@example.com", i), fmt.Sprintf("98%08d", i)))
		require.Equal(t, "TXN", a.body["statuscode"], "create %d: %v", i, a.body)
	}
}

func TestInstantPayPaging(t *testing.T) {
	tests := []struct {
		name        string
		cfg         InstantPayConfig
		query       string
		wantPaged   bool
		wantEmails  []int // the users listed, by number
		wantPage    map[string]any
		wantDocsLen int
	}{
		{name: "unpaged by default", query: "", wantEmails: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24}},
		{name: "a page when asked", query: "?page=2&limit=10", wantPaged: true,
			wantEmails: []int{10, 11, 12, 13, 14, 15, 16, 17, 18, 19},
			wantPage: map[string]any{"totalDocs": 25.0, "limit": 10.0, "page": 2.0, "totalPages": 3.0, "pagingCounter": 11.0,
				"hasPrevPage": true, "hasNextPage": true, "prevPage": 1.0, "nextPage": 3.0}},
		{name: "the last page", query: "?page=3&limit=10", wantPaged: true, wantEmails: []int{20, 21, 22, 23, 24},
			wantPage: map[string]any{"page": 3.0, "totalPages": 3.0, "hasNextPage": false, "nextPage": nil}},
		{name: "limit capped", cfg: InstantPayConfig{MaxPageSize: 4}, query: "?limit=100", wantPaged: true,
			wantEmails: []int{0, 1, 2, 3}, wantPage: map[string]any{"limit": 4.0, "totalPages": 7.0}},
		{name: "always paged, default page size", cfg: InstantPayConfig{Paging: PagingAlways, PageSize: 20}, query: "", wantPaged: true,
			wantEmails: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19},
			wantPage:   map[string]any{"limit": 20.0, "totalPages": 2.0, "hasNextPage": true}},
		{name: "newest first", cfg: InstantPayConfig{NewestFirst: true}, query: "?page=1&limit=3", wantPaged: true,
			wantEmails: []int{24, 23, 22}},
		{name: "never paged", cfg: InstantPayConfig{Paging: PagingNever}, query: "?page=2&limit=3",
			wantEmails: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, NewInstantPay(tt.cfg))
			fillInstantPay(t, srv.URL, srv.Client(), 25)
			a := mustCall(t, srv.Client(), http.MethodGet, srv.URL+"/contacts/profile"+tt.query, instantPayHeaders(), nil)
			require.Equal(t, "TXN", a.body["statuscode"], "the list succeeds: %v", a.body)
			var listed []any
			if tt.wantPaged {
				data, ok := a.body["data"].(map[string]any)
				require.True(t, ok, "a page is an object: %v", a.body["data"])
				listed, _ = data["docs"].([]any)
				for k, v := range tt.wantPage {
					assert.Equal(t, v, data[k], "data.%s", k)
				}
			} else {
				var ok bool
				listed, ok = a.body["data"].([]any)
				require.True(t, ok, "the whole list is an array: %v", a.body["data"])
			}
			got := make([]string, len(listed))
			for i, c := range listed {
				got[i] = c.(map[string]any)["email"].(string)
			}
			want := make([]string, len(tt.wantEmails))
			for i, n := range tt.wantEmails {
				want[i] = fmt.Sprintf("user%d@example.com", n)
			}
			assert.Equal(t, want, got, "the contacts listed, in order")
		})
	}
	t.Run("a bad page is refused", func(t *testing.T) {
		srv := startServer(t, NewInstantPay(InstantPayConfig{}))
		a := mustCall(t, srv.Client(), http.MethodGet, srv.URL+"/contacts/profile?page=0", instantPayHeaders(), nil)
		assert.Equal(t, "RPI", a.body["statuscode"], "page 0 is refused: %v", a.body)
	})
}

func TestPIKPaging(t *testing.T) {
	tests := []struct {
		name      string
		cfg       PIKConfig
		query     string
		wantCodes []any
		wantPage  map[string]any
	}{
		{name: "pages announced", query: "?pageNum=2&pageSize=2&keyword=c", wantCodes: []any{"c2", "c3"},
			wantPage: map[string]any{"total": 5.0, "pageNum": 2.0, "pageSize": 2.0, "pages": 3.0, "hasNextPage": true}},
		{name: "last page", query: "?pageNum=3&pageSize=2", wantCodes: []any{"c4"},
			wantPage: map[string]any{"pages": 3.0, "hasNextPage": false}},
		{name: "page size capped", cfg: PIKConfig{MaxPageSize: 2}, query: "?pageSize=10", wantCodes: []any{"c0", "c1"},
			wantPage: map[string]any{"pageSize": 2.0, "pages": 3.0}},
		{name: "newest first", cfg: PIKConfig{NewestFirst: true}, query: "?pageSize=2", wantCodes: []any{"c4", "c3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, NewPIK(tt.cfg))
			token := pikToken(t, srv.Client(), srv.URL)
			for i := range 5 {
				a := mustCall(t, srv.Client(), http.MethodPost, srv.URL+"/api/v1/contact/create", bearer(token),
					pikContact(fmt.Sprintf("c%d", i), fmt.Sprintf("p%d@example.com", i)))
				require.EqualValues(t, 200, a.body["code"], "create %d: %v", i, a.body)
			}
			a := mustCall(t, srv.Client(), http.MethodGet, srv.URL+"/api/v1/contact/list"+tt.query, bearer(token), nil)
			require.EqualValues(t, 200, a.body["code"], "the list succeeds: %v", a.body)
			data := a.body["data"].(map[string]any)
			codes := []any{}
			for _, c := range data["list"].([]any) {
				codes = append(codes, c.(map[string]any)["contactCode"])
			}
			assert.Equal(t, tt.wantCodes, codes, "the contacts listed, in order")
			for k, v := range tt.wantPage {
				assert.Equal(t, v, data[k], "data.%s", k)
			}
		})
	}
}
