package replay

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/contactrelay/contactrelay/contact"
)

// Filter selects failures. Its zero value selects every failure.
type Filter struct {
	// Since and Until bound the failed event's time, inclusive; zero means
	// unbounded.
	Since, Until time.Time
	// Reasons, when not empty, are the reasons to select.
	Reasons []contact.Reason
	// Providers, when not empty, are the providers to select. A failure
	// that names no provider (malformed, unroutable) matches none.
	Providers []string
	// CommandID, when not empty, selects the failures of one command.
	CommandID string
	// Limit is how many of the newest matching failures to return; zero
	// means all.
	Limit int
}

// Match reports whether f passes the filter (the limit aside).
func (flt Filter) Match(f *Failure) bool {
	at := f.Event.Time
	switch {
	case !flt.Since.IsZero() && at.Before(flt.Since):
		return false
	case !flt.Until.IsZero() && at.After(flt.Until):
		return false
	case len(flt.Reasons) > 0 && !slices.Contains(flt.Reasons, f.Data.Reason):
		return false
	case len(flt.Providers) > 0 && !slices.Contains(flt.Providers, f.Data.Provider):
		return false
	case flt.CommandID != "" && f.CommandID() != flt.CommandID:
		return false
	}
	return true
}

// Validate reports a filter that can select nothing by construction.
func (flt Filter) Validate() error {
	if !flt.Since.IsZero() && !flt.Until.IsZero() && flt.Until.Before(flt.Since) {
		return fmt.Errorf("--until (%s) is before --since (%s)", flt.Until.Format(time.RFC3339), flt.Since.Format(time.RFC3339))
	}
	if flt.Limit < 0 {
		return fmt.Errorf("--limit must not be negative, not %d", flt.Limit)
	}
	return nil
}

// reasons lists the contract's reasons, for messages.
var reasons = []contact.Reason{
	contact.ReasonMalformed, contact.ReasonInvalid, contact.ReasonUnroutable, contact.ReasonRejected, contact.ReasonExhausted,
	contact.ReasonConflict, contact.ReasonAmbiguous,
}

// ParseReasons turns comma-separated lists of reasons (each value of a
// repeated flag) into reasons, refusing any the contract does not name.
func ParseReasons(values []string) ([]contact.Reason, error) {
	var out []contact.Reason
	var errs []error
	for _, s := range SplitList(values) {
		r := contact.Reason(s)
		if !slices.Contains(reasons, r) {
			errs = append(errs, fmt.Errorf("unknown reason %q (the reasons are malformed, invalid, unroutable, rejected, exhausted, conflict and ambiguous)", s))
			continue
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out, errors.Join(errs...)
}

// SplitList splits each value at commas and drops empty items and white
// space: "a,b" and "c" give a, b and c.
func SplitList(values []string) []string {
	var out []string
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
	}
	return out
}

// ParseTime reads a point in time as an RFC 3339 time
// ("2026-11-22T10:00:00Z"), a date ("2026-11-22", midnight UTC), or a
// duration back from now: a Go duration ("90m", "2h30m") or a number of
// days ("3d").
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if days, ok := strings.CutSuffix(s, "d"); ok && err != nil {
		var n int
		if n, err = strconv.Atoi(days); err == nil {
			d = time.Duration(n) * 24 * time.Hour
		}
	}
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-11-22T10:00:00Z), a date (2026-11-22) nor a duration back from now (2h, 3d)", s)
	}
	return now.Add(-d), nil
}
