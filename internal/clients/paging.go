package clients

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// ListPage is one page of a provider's list, as a lookup reads it: its
// items and what it announces about the pages that follow. A member the
// page does not carry is zero (Total and Count are -1, HasNext nil).
type ListPage struct {
	// Items are the list's entries on this page.
	Items []json.RawMessage
	// ItemsKey is where the items were found: "" for data itself, else the
	// key of data that holds them.
	ItemsKey string

	// Number is the page number the page says it is.
	Number int
	// TotalPages is the number of pages announced.
	TotalPages int
	// Total is the number of entries announced in the whole list, -1 if
	// none is.
	Total int
	// Count is a "count" member: the entries of the list or of this page,
	// which one the providers do not say; -1 if there is none. A walk uses
	// it only as a lower bound of the list.
	Count int
	// HasNext says whether a next page exists, when the page says so
	// (hasNextPage, hasMore, isLastPage, …).
	HasNext *bool
	// NextPage is a positive number announced as the next page.
	NextPage int
	// Limit is the page size the page announces.
	Limit int
	// Cursor is the cursor of the next page, and CursorParam the query
	// parameter that carries it back.
	Cursor      string
	CursorParam string
	// Link is the link to the next page, as announced (absolute, or
	// relative to the request).
	Link string
	// Unfollowable names the members that hint at paging but that a walk
	// cannot follow: an offset, an unnamed cursor, a paging member of a
	// type it cannot read.
	Unfollowable []string
}

// Paging members a ListPage reads, by what they mean. The first key present
// (not null) wins.
var (
	numberKeys     = []string{"page", "pageNum", "pageNo", "pageNumber", "currentPage", "current_page", "current"}
	totalPagesKeys = []string{"totalPages", "total_pages", "pages", "pageCount", "page_count", "lastPage", "last_page"}
	totalKeys      = []string{"total", "totalDocs", "totalCount", "total_count", "totalItems", "totalRecords", "totalElements", "totalResults"}
	hasNextKeys    = []string{"hasNextPage", "hasNext", "has_next", "has_next_page", "hasMore", "has_more"}
	isLastKeys     = []string{"isLastPage", "is_last_page", "last"}
	limitKeys      = []string{"limit", "pageSize", "page_size", "perPage", "per_page"}
	nextKeys       = []string{"next", "nextPage", "next_page", "nextLink", "next_link", "nextUrl", "next_url", "nextPageUrl", "next_page_url"}
	// cursorParams maps a next-cursor member to the parameter that sends
	// it back.
	cursorParams = []struct{ key, param string }{
		{"nextCursor", "cursor"}, {"next_cursor", "cursor"},
		{"nextPageToken", "pageToken"}, {"next_page_token", "page_token"},
	}
	// unfollowableKeys hint at paging a walk cannot follow: offsets, and
	// cursors whose direction or parameter is not said.
	unfollowableKeys = []string{"offset", "skip", "start", "after", "before", "cursor", "scrollId", "scroll_id",
		"continuation", "continuationToken", "lastEvaluatedKey", "pageToken", "page_token"}
	// holderKeys are the objects some APIs keep their paging members in.
	holderKeys = []string{"pagination", "paging", "pageInfo", "page_info", "meta", "links", "_links"}
)

// ParseListPage reads one page of a list from a reply body: a JSON object
// whose data member is either the array of items or an object holding it
// under the first of itemKeys present. Paging members are read beside the
// items in data, in the body beside data, and in a holder object
// (pagination, paging, pageInfo, meta, links) of either; data's win. A
// data that is null or missing is an empty page. Any other shape is an
// error: the list cannot be read.
func ParseListPage(body []byte, itemKeys ...string) (ListPage, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return ListPage{}, fmt.Errorf("decode list reply: %w", err)
	}
	data := bytes.TrimSpace(top["data"])
	delete(top, "data")
	page := ListPage{Total: -1, Count: -1}
	sources := []map[string]json.RawMessage{}
	switch {
	case len(data) == 0 || string(data) == "null":
	case data[0] == '[':
		if err := json.Unmarshal(data, &page.Items); err != nil {
			return ListPage{}, fmt.Errorf("decode list: %w", err)
		}
	case data[0] == '{':
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(data, &obj); err != nil {
			return ListPage{}, fmt.Errorf("decode list holder: %w", err)
		}
		i := slices.IndexFunc(itemKeys, func(k string) bool { _, ok := obj[k]; return ok })
		if i < 0 {
			return ListPage{}, fmt.Errorf("data is an object without any of %s", strings.Join(itemKeys, ", "))
		}
		page.ItemsKey = itemKeys[i]
		items := bytes.TrimSpace(obj[page.ItemsKey])
		delete(obj, page.ItemsKey)
		if len(items) == 0 || items[0] != '[' && string(items) != "null" {
			return ListPage{}, fmt.Errorf("data.%s is not an array", page.ItemsKey)
		}
		if err := json.Unmarshal(items, &page.Items); err != nil {
			return ListPage{}, fmt.Errorf("decode list: %w", err)
		}
		sources = append(sources, obj)
	default:
		return ListPage{}, fmt.Errorf("data is neither an array nor an object")
	}
	sources = append(sources, top)
	for _, src := range slices.Clone(sources) {
		for _, k := range holderKeys {
			var holder map[string]json.RawMessage
			if v, ok := src[k]; ok && json.Unmarshal(v, &holder) == nil && holder != nil {
				sources = append(sources, holder)
			}
		}
	}
	page.readPaging(sources)
	return page, nil
}

// readPaging fills the paging members from sources, the first present
// winning.
func (p *ListPage) readPaging(sources []map[string]json.RawMessage) {
	// find returns the first non-null member under any of keys.
	find := func(keys []string) (string, json.RawMessage, bool) {
		for _, src := range sources {
			for _, k := range keys {
				if v := bytes.TrimSpace(src[k]); len(v) > 0 && string(v) != "null" {
					return k, v, true
				}
			}
		}
		return "", nil, false
	}
	bad := func(k string) { p.Unfollowable = append(p.Unfollowable, k) }
	count := func(keys []string, dst *int) {
		if k, v, ok := find(keys); ok {
			if n, isInt := intOf(v); isInt && n >= 0 {
				*dst = n
			} else if b, isBool := boolOf(v); isBool && (k == "lastPage" || k == "last_page") {
				p.HasNext = &[]bool{!b}[0] // Spring-like "lastPage": true
			} else {
				bad(k)
			}
		}
	}
	count(numberKeys, &p.Number)
	count(totalPagesKeys, &p.TotalPages)
	count(totalKeys, &p.Total)
	count([]string{"count"}, &p.Count)
	count(limitKeys, &p.Limit)
	if k, v, ok := find(hasNextKeys); ok {
		if b, isBool := boolOf(v); isBool {
			p.HasNext = &b
		} else {
			bad(k)
		}
	} else if k, v, ok := find(isLastKeys); ok {
		if b, isBool := boolOf(v); isBool {
			p.HasNext = &[]bool{!b}[0]
		} else if k != "last" { // "last" may be a link to the last page
			bad(k)
		}
	}
	if k, v, ok := find(nextKeys); ok {
		p.readNext(k, v)
	}
	for _, cp := range cursorParams {
		if _, v, ok := find([]string{cp.key}); ok {
			if t, err := TextOf(v); err == nil && t != "" {
				p.Cursor, p.CursorParam = t.String(), cp.param
			} else {
				bad(cp.key)
			}
			break
		}
	}
	for _, k := range unfollowableKeys {
		if _, _, ok := find([]string{k}); ok {
			bad(k)
		}
	}
}

// readNext reads a next member: a page number, a link, or an object with
// an href.
func (p *ListPage) readNext(k string, v json.RawMessage) {
	if n, ok := intOf(v); ok {
		if n > 0 {
			p.NextPage = n
		}
		return
	}
	var href struct {
		Href string `json:"href"`
	}
	if v[0] == '{' && json.Unmarshal(v, &href) == nil && href.Href != "" {
		p.Link = href.Href
		return
	}
	t, err := TextOf(v)
	s := strings.TrimSpace(t.String())
	switch {
	case err != nil:
		p.Unfollowable = append(p.Unfollowable, k)
	case s == "":
	case strings.HasPrefix(s, "/") || strings.HasPrefix(s, "?") ||
		strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://"):
		p.Link = s
	default:
		// A bare token under "next": a cursor, but with no name for the
		// parameter that sends it back.
		p.Unfollowable = append(p.Unfollowable, k)
	}
}

// intOf reads a JSON number, or a string holding one, as a whole number.
func intOf(v json.RawMessage) (int, bool) {
	t, err := TextOf(v)
	if err != nil || t == "" {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(t.String()))
	return n, err == nil
}

// boolOf reads a JSON boolean, or a string "true"/"false".
func boolOf(v json.RawMessage) (bool, bool) {
	t, err := TextOf(v)
	if err != nil {
		return false, false
	}
	b, err := strconv.ParseBool(t.String())
	return b, err == nil
}

// resolveLink returns the target of a next link relative to base (an API
// root without a trailing slash) and the request that announced it: the
// path and query that follow base. ok is false for a link that leaves the
// API root (another scheme, host or path), which a lookup must not follow:
// it would send the credentials elsewhere.
func resolveLink(base, requested, link string) (target string, ok bool) {
	from, err := url.Parse(base + requested)
	if err != nil {
		return "", false
	}
	ref, err := url.Parse(link)
	if err != nil {
		return "", false
	}
	abs := from.ResolveReference(ref).String()
	if !strings.HasPrefix(abs, base+"/") {
		return "", false
	}
	return strings.TrimPrefix(abs, base), true
}
