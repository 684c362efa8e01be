package clients

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/contactrelay/contactrelay/internal/clients/provider"
)

// DefaultMaxPages is ListWalk's bound of pages when MaxPages is zero.
const DefaultMaxPages = 50

// PageRequest is the page a walk asks for: exactly one of Number (the
// first page is 1), Cursor (sent back under CursorParam) or Target (a next
// link, as the path and query under the API root) is set.
type PageRequest struct {
	Number      int
	Cursor      string
	CursorParam string
	Target      string
}

// ListWalk walks a provider's paged list, page after page, for the first
// entry that matches. It follows whichever paging the pages announce: page
// numbers with a total of pages or of entries, a has-next flag, a next
// cursor or a next link. It concludes that nothing matches only from a
// complete view of the list; every other end is an error that satisfies
// errors.Is(err, provider.ErrIncompleteLookup). A ListWalk is a value; it
// is safe for concurrent use when Fetch and Match are.
type ListWalk struct {
	// Call names the provider and the operation in errors.
	Call Call
	// BaseURL is the API root (no trailing slash): next links are followed
	// only below it, so that the credentials never go elsewhere.
	BaseURL string
	// PageSize is the page size the requests ask for. A page that
	// announces no paging at all is the last one only when it holds fewer
	// entries than this (or than the page size it announces).
	PageSize int
	// MaxPages bounds the pages read; zero means DefaultMaxPages.
	MaxPages int
	// Budget bounds the time of the whole walk, every page included;
	// zero means no bound beyond ctx's.
	Budget time.Duration
	// Scope says what the list was narrowed to, for messages ("contacts
	// with keyword CR1234"); it must hold no personal data unmasked.
	Scope string
	// Fetch reads one page, returning the path and query it requested
	// (under BaseURL, for resolving a relative next link). Its error is a
	// *provider.Error for a page that could not be read.
	Fetch func(ctx context.Context, req PageRequest) (requested string, page ListPage, err error)
	// Match reports whether an entry is the one looked for.
	Match func(item json.RawMessage) bool
}

// walkState is what a walk has seen so far.
type walkState struct {
	pages      int    // pages read
	items      int    // entries read
	announced  string // what the last page announced of the whole, for messages
	signatures map[[32]byte]bool
	followed   map[string]bool // cursors and links followed
}

// Find walks the list and returns the first entry Match accepts.
//
//   - found is true as soon as a page holds a match, whatever the pages
//     still unread.
//   - found is false with a nil error only when the walk saw the whole list
//     (as narrowed by the requests): a page says it is the last, or the
//     pages announced are all read, or a page without any paging members
//     holds fewer entries than the page size.
//   - Otherwise the error is a *provider.Error whose Err satisfies
//     errors.Is(err, provider.ErrIncompleteLookup), and whose Message says
//     what was read and why absence cannot be proven. A page that could not
//     be read keeps that page's class, status, code and Retry-After, so a
//     transient one (5xx, 429, timeout) may be retried later; a walk that
//     ran out of time is Transient too. More pages than MaxPages, a paging
//     it cannot follow, a page that repeats an earlier one, or a page
//     number other than the one asked for are Permanent: reading again
//     would not see more.
func (w ListWalk) Find(ctx context.Context) (item json.RawMessage, found bool, err error) {
	maxPages := w.MaxPages
	if maxPages <= 0 {
		maxPages = DefaultMaxPages
	}
	if w.Budget > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.Budget)
		defer cancel()
	}
	st := &walkState{signatures: map[[32]byte]bool{}, followed: map[string]bool{}}
	req := PageRequest{Number: 1}
	for {
		if st.pages == maxPages {
			return nil, false, w.incomplete(st, provider.Permanent, fmt.Sprintf(
				"the list has more pages than the %d a lookup reads", maxPages), nil)
		}
		if ctx.Err() != nil {
			return nil, false, w.incomplete(st, provider.Transient, w.outOfTime(), ctx.Err())
		}
		requested, page, err := w.Fetch(ctx, req)
		if err != nil {
			return nil, false, w.pageFailed(ctx, st, err)
		}
		st.pages++
		st.items += len(page.Items)
		st.announced = announced(page)
		for _, it := range page.Items {
			if w.Match(it) {
				return it, true, nil
			}
		}
		if req.Number > 0 && page.Number > 0 && page.Number != req.Number {
			return nil, false, w.incomplete(st, provider.Permanent, fmt.Sprintf(
				"page %d was asked for and the reply says it is page %d, so the pages are not numbered as expected",
				req.Number, page.Number), nil)
		}
		if len(page.Items) > 0 {
			sig := signature(page.Items)
			if st.signatures[sig] {
				return nil, false, w.incomplete(st, provider.Permanent,
					"a page repeated an earlier one, so the provider did not follow the paging request", nil)
			}
			st.signatures[sig] = true
		}
		more, why := w.more(st, page)
		if why != "" {
			return nil, false, w.incomplete(st, provider.Permanent, why, nil)
		}
		if !more {
			return nil, false, nil
		}
		next, why := w.next(req, requested, page)
		if why != "" {
			return nil, false, w.incomplete(st, provider.Permanent, why, nil)
		}
		if key := next.Cursor + "\x00" + next.Target; next.Number == 0 {
			if st.followed[key] {
				return nil, false, w.incomplete(st, provider.Permanent,
					"a page announced a next page already read, so the paging loops", nil)
			}
			st.followed[key] = true
		}
		req = next
	}
}

// more decides from a page whether the list goes on. A non-empty why means
// the page cannot tell.
func (w ListWalk) more(st *walkState, p ListPage) (more bool, why string) {
	limit := w.PageSize
	if p.Limit > 0 {
		limit = p.Limit
	}
	switch {
	case p.HasNext != nil:
		return *p.HasNext, ""
	case p.TotalPages > 0:
		if p.Number > 0 {
			return p.Number < p.TotalPages, ""
		}
		return st.pages < p.TotalPages, ""
	case p.Total >= 0:
		if st.items >= p.Total {
			return false, ""
		}
		if len(p.Items) == 0 {
			return false, fmt.Sprintf("the list announces %d entries and the pages ran out after %d", p.Total, st.items)
		}
		return true, ""
	case p.Link != "" || p.Cursor != "" || p.NextPage > 0:
		return true, ""
	case len(p.Unfollowable) > 0:
		return false, "the page has paging members this lookup cannot follow (" + strings.Join(p.Unfollowable, ", ") + ")"
	case p.Count > st.items:
		return true, ""
	case limit <= 0:
		return false, "the page announces no paging and no page size was asked for"
	}
	// No paging announced: a page short of the page size is the last.
	return len(p.Items) >= limit, ""
}

// next is the request for the page after p, which answered req.
func (w ListWalk) next(req PageRequest, requested string, p ListPage) (PageRequest, string) {
	switch {
	case p.Link != "":
		target, ok := resolveLink(w.BaseURL, requested, p.Link)
		if !ok {
			return PageRequest{}, "the next link leads away from the API, which a lookup does not follow"
		}
		return PageRequest{Target: target}, ""
	case p.Cursor != "":
		return PageRequest{Cursor: p.Cursor, CursorParam: p.CursorParam}, ""
	case len(p.Unfollowable) > 0 && req.Number == 0:
		return PageRequest{}, "the page has paging members this lookup cannot follow (" + strings.Join(p.Unfollowable, ", ") + ")"
	case req.Number == 0:
		return PageRequest{}, "a page reached by cursor or link announces more pages but not how to reach them"
	}
	return PageRequest{Number: req.Number + 1}, ""
}

// pageFailed is the error of a walk whose next page could not be read.
func (w ListWalk) pageFailed(ctx context.Context, st *walkState, err error) error {
	var pe *provider.Error
	if !errors.As(err, &pe) {
		pe = &provider.Error{Class: provider.Transient, Message: err.Error()}
	}
	why := fmt.Sprintf("page %d could not be read (%s)", st.pages+1, describe(pe))
	if ctx.Err() != nil {
		why = w.outOfTime() + "; " + why
	}
	out := w.incomplete(st, pe.Class, why, err)
	if out.Class == provider.Ambiguous {
		out.Class = provider.Transient // reading a list changes nothing
	}
	out.HTTPStatus, out.Code, out.RequestID, out.RetryAfter = pe.HTTPStatus, pe.Code, pe.RequestID, pe.RetryAfter
	return out
}

func (w ListWalk) outOfTime() string {
	if w.Budget > 0 {
		return fmt.Sprintf("the lookup's time (%s) ran out", w.Budget)
	}
	return "the lookup's time ran out"
}

// incomplete is the error of a walk that could not see the whole list.
func (w ListWalk) incomplete(st *walkState, class provider.Class, why string, cause error) *provider.Error {
	var b strings.Builder
	fmt.Fprintf(&b, "lookup incomplete: %s; ", why)
	switch st.pages {
	case 0:
		b.WriteString("no page")
	case 1:
		b.WriteString("1 page")
	default:
		fmt.Fprintf(&b, "%d pages", st.pages)
	}
	fmt.Fprintf(&b, " (%d entries", st.items)
	if st.announced != "" {
		b.WriteString(" of " + st.announced)
	}
	b.WriteString(")")
	if w.Scope != "" {
		b.WriteString(" of " + w.Scope)
	}
	b.WriteString(" read without a match, so absence cannot be proven: the contact may exist")
	err := provider.ErrIncompleteLookup
	if cause != nil {
		err = errors.Join(provider.ErrIncompleteLookup, cause)
	}
	return &provider.Error{Provider: w.Call.Provider, Op: w.Call.Op, Class: class, Message: b.String(), Err: err}
}

// announced says what a page announced of the whole list, or "".
func announced(p ListPage) string {
	var parts []string
	if p.TotalPages > 0 {
		parts = append(parts, fmt.Sprintf("%d pages", p.TotalPages))
	}
	if p.Total >= 0 {
		parts = append(parts, fmt.Sprintf("%d entries", p.Total))
	}
	if len(parts) == 0 {
		return ""
	}
	return "the " + strings.Join(parts, ", ") + " announced"
}

// describe says what went wrong with a page, without its body; its status
// and code are the error's own fields.
func describe(pe *provider.Error) string {
	switch {
	case pe.Message != "":
		return pe.Message
	case pe.HTTPStatus != 0:
		return fmt.Sprintf("HTTP %d", pe.HTTPStatus)
	}
	return pe.Class.String() + " failure"
}

// signature identifies a page by its entries.
func signature(items []json.RawMessage) [32]byte {
	h := sha256.New()
	for _, it := range items {
		h.Write(it)
		h.Write([]byte{0})
	}
	var sig [32]byte
	h.Sum(sig[:0])
	return sig
}
