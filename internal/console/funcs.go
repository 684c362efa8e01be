package console

import (
	"errors"
	"fmt"
	"html/template"
	"net/url"
	"strings"
	"time"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/failstore"
)

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"ago": ago,
	"href": func(path string, v url.Values) string {
		if len(v) == 0 {
			return path
		}
		return path + "?" + v.Encode()
	},
	"set": func(v url.Values, kv ...string) url.Values {
		out := url.Values{}
		for k, vs := range v {
			out[k] = append([]string(nil), vs...)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				out.Del(kv[i])
			} else {
				out.Set(kv[i], kv[i+1])
			}
		}
		return out
	},
	"commandHref": func(id string) string { return "/failure?" + url.Values{"id": {id}}.Encode() },
	"groupValues": func(g failstore.Group) url.Values {
		return url.Values{"g_reason": {string(g.Reason)}, "g_provider": {g.Provider}, "g_message": {g.Message}}
	},
	"contains": func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	},
	"short":       short,
	"add":         func(a, b int) int { return a + b },
	"plural":      plural,
	"groupAdvice": groupAdvice,
	"dash": func(s string) string {
		if s == "" {
			return "—"
		}
		return s
	},
}

// plural is one when n is 1, else many: "1 open failure", "2 open failures".
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// advice is what to do about a group of failures that a replay unchanged
// would not mend: Text says why; Repair, that each may be repaired.
type advice struct {
	Text   string
	Repair bool
}

// groupAdvice says what to do about a group of failures of a reason that
// is not retryable, in place of replaying the group.
func groupAdvice(r contact.Reason) advice {
	switch r {
	case contact.ReasonInvalid:
		return advice{"Replayed unchanged, these fail again.", true}
	case contact.ReasonRejected:
		return advice{"Replayed unchanged, the provider refuses these again.", true}
	case contact.ReasonUnroutable:
		return advice{"Replayed unchanged, these fail again unless their provider is enabled.", true}
	case contact.ReasonAmbiguous:
		return advice{"The contacts may exist: check the provider before replaying any.", false}
	case contact.ReasonConflict:
		return advice{"Nothing to replay: their commandIds belong to other content.", false}
	case contact.ReasonMalformed:
		return advice{"Nothing to replay: these are not commands.", false}
	}
	return advice{"Not retryable: replayed unchanged, these fail again.", false}
}

// ago says how long ago t was, roughly.
func ago(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	d := time.Since(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// staleText says why the failures shown may be out of date.
func staleText(err error) string {
	if errors.Is(err, failstore.ErrNoStore) {
		return "the open-failure store " + failstore.Stream + " does not exist yet: run 'consumer setup' (or start the service, which creates it)"
	}
	return "the open failures could not be reloaded, what is shown may be out of date: " + strings.TrimSpace(err.Error())
}

// short cuts s to n characters, the last an ellipsis when it was longer.
func short(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
