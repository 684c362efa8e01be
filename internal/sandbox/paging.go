package sandbox

import (
	"net/url"
	"slices"
	"strconv"
)

// ListPaging is how InstantPay's sandbox pages GET /contacts/profile. The
// real API's docs describe no paging, so a sandbox can play each kind of
// list a client must be ready for.
type ListPaging uint8

const (
	// PagingWhenAsked, the zero value, answers a page in the
	// mongoose-paginate shape (data.docs, totalDocs, limit, page,
	// totalPages, hasNextPage, nextPage, …) when the request has a page or
	// limit parameter, and the whole list as the data array otherwise.
	PagingWhenAsked ListPaging = iota
	// PagingAlways answers mongoose-paginate pages to every request,
	// PageSize contacts a page when the request names no limit.
	PagingAlways
	// PagingNever answers the whole list as the data array, ignoring page
	// and limit.
	PagingNever
)

// Defaults of the sandboxes' paging.
const (
	// DefaultPageSize is the page size of a paged list whose request names
	// none.
	DefaultPageSize = 20
	// DefaultMaxPageSize is the largest InstantPay limit honoured; a larger
	// one gets pages of this size, as many APIs cap theirs.
	DefaultMaxPageSize = 100
)

// pageBounds returns the part [from, to) of a list of n entries that page
// pageNum (from 1) of size holds.
func pageBounds(n, pageNum, size int) (from, to int) {
	from = min(n, (pageNum-1)*size)
	return from, min(n, from+size)
}

// pagesOf returns how many pages of size n entries fill.
func pagesOf(n, size int) int {
	return (n + size - 1) / size
}

// ordered returns contacts oldest first, or newest first.
func ordered(contacts []Contact, newestFirst bool) []Contact {
	if newestFirst {
		slices.Reverse(contacts)
	}
	return contacts
}

// pageQuery reads a page number and a page size from q's parameters
// pageKey and sizeKey: def when absent, the size capped at maxSize. ok is
// false for a value that is not a positive whole number.
func pageQuery(q url.Values, pageKey, sizeKey string, def, maxSize int) (pageNum, size int, ok bool) {
	pageNum, err1 := queryInt(q.Get(pageKey), 1)
	size, err2 := queryInt(q.Get(sizeKey), def)
	if err1 != nil || err2 != nil || pageNum < 1 || size < 1 {
		return 0, 0, false
	}
	if maxSize > 0 {
		size = min(size, maxSize)
	}
	return pageNum, size, true
}

// queryInt parses a query parameter, def when it is absent.
func queryInt(s string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	return strconv.Atoi(s)
}
