package console

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/openfailures"
	"github.com/contactrelay/contactrelay/internal/replay"
)

// maxProviders bounds the providers a filter names.
const maxProviders = 32

// parseQuery reads a selection from a form or a query string; what it
// cannot read it says, and leaves out.
func parseQuery(v url.Values, now time.Time) (query, []string) {
	var q query
	var errs []string
	unknown := 0
	for _, r := range replay.SplitList(v["reason"]) {
		switch {
		case !slices.Contains(reasons, contact.Reason(r)):
			if unknown++; unknown <= 3 {
				errs = append(errs, fmt.Sprintf("unknown reason %q", short(r, 40)))
			}
		case !slices.Contains(q.Reasons, r):
			q.Reasons = append(q.Reasons, r)
		}
	}
	if unknown > 3 {
		errs = append(errs, fmt.Sprintf("and %d more unknown reasons", unknown-3))
	}
	// Each provider is matched against every open failure, and kept in
	// every link of the page: a few are a filter, thousands an attack.
	q.Providers = replay.SplitList(v["provider"])
	if len(q.Providers) > maxProviders {
		errs = append(errs, fmt.Sprintf("%d providers: a filter takes %d at most, the first %d are used", len(q.Providers), maxProviders, maxProviders))
		q.Providers = q.Providers[:maxProviders]
	}
	q.SinceText, q.UntilText = strings.TrimSpace(v.Get("since")), strings.TrimSpace(v.Get("until"))
	for _, t := range []struct {
		name, text string
		dst        *time.Time
	}{{"since", q.SinceText, &q.Since}, {"until", q.UntilText, &q.Until}} {
		if t.text == "" {
			continue
		}
		at, err := parseTime(t.text, now)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", t.name, err))
			continue
		}
		*t.dst = at
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		errs = append(errs, "until is before since: nothing can match")
	}
	q.Text = strings.TrimSpace(v.Get("q"))
	q.CommandID = strings.TrimSpace(v.Get("command"))
	if v.Has("g_reason") {
		q.Group = &openfailures.GroupKey{Reason: v.Get("g_reason"), Provider: v.Get("g_provider"), Message: v.Get("g_message")}
	}
	for _, s := range v["seq"] {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Sprintf("not a failure: %q", s))
			continue
		}
		q.Seqs = append(q.Seqs, n)
	}
	q.UpTo, _ = strconv.ParseUint(v.Get("upto"), 10, 64)
	return q, errs
}

// parseTime reads a time as 'consumer failures --since' does, and also
// as an HTML datetime-local field sends it (UTC).
func parseTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse("2006-01-02T15:04", s); err == nil {
		return t, nil
	}
	return replay.ParseTime(s, now)
}

// values writes a selection back as form values, for links and for the
// hidden fields of a confirmation.
func (q query) values() url.Values {
	v := url.Values{}
	for _, r := range q.Reasons {
		v.Add("reason", r)
	}
	for _, p := range q.Providers {
		v.Add("provider", p)
	}
	if q.SinceText != "" {
		v.Set("since", q.SinceText)
	}
	if q.UntilText != "" {
		v.Set("until", q.UntilText)
	}
	if q.Text != "" {
		v.Set("q", q.Text)
	}
	if q.CommandID != "" {
		v.Set("command", q.CommandID)
	}
	if q.Group != nil {
		v.Set("g_reason", q.Group.Reason)
		v.Set("g_provider", q.Group.Provider)
		v.Set("g_message", q.Group.Message)
	}
	for _, s := range q.Seqs {
		v.Add("seq", strconv.FormatUint(s, 10))
	}
	if q.UpTo != 0 {
		v.Set("upto", strconv.FormatUint(q.UpTo, 10))
	}
	return v
}

// describe says in words what q selects, for the action log and pages.
func (q query) describe() string {
	if len(q.Seqs) > 0 {
		if len(q.Seqs) == 1 {
			return "1 failure picked"
		}
		return fmt.Sprintf("%d failures picked", len(q.Seqs))
	}
	var parts []string
	if len(q.Reasons) > 0 {
		parts = append(parts, "reason "+strings.Join(q.Reasons, ","))
	}
	if len(q.Providers) > 0 {
		parts = append(parts, "provider "+strings.Join(q.Providers, ","))
	}
	if q.SinceText != "" {
		parts = append(parts, "since "+q.SinceText)
	}
	if q.UntilText != "" {
		parts = append(parts, "until "+q.UntilText)
	}
	if q.CommandID != "" {
		parts = append(parts, "commandId "+q.CommandID)
	}
	if q.Text != "" {
		parts = append(parts, fmt.Sprintf("text %q", q.Text))
	}
	if q.Group != nil {
		parts = append(parts, fmt.Sprintf("group %s/%s %q", q.Group.Reason, q.Group.Provider, q.Group.Message))
	}
	if len(parts) == 0 {
		return "every open failure"
	}
	return strings.Join(parts, ", ")
}
