// Package redact masks personal data (email addresses, phone numbers) in
// text bound for logs.
package redact

import (
	"log/slog"
	"regexp"
	"strings"
)

var (
	emailPattern = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)
	phonePattern = regexp.MustCompile(`\+?[0-9][0-9 ]{8,}[0-9]`)
)

// Email masks an email address, keeping its first character and domain:
// "jane.doe@example.com" becomes "j***@example.com".
func Email(s string) string {
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" {
		return "***"
	}
	return local[:1] + "***@" + domain
}

// Mobile masks a phone number, keeping its last two digits:
// "+919876543210" becomes "***10".
func Mobile(s string) string {
	if len(s) <= 2 {
		return "***"
	}
	return "***" + s[len(s)-2:]
}

// String masks every email address and phone number found in free text,
// such as a provider's error message.
func String(s string) string {
	// Most log text holds neither: skip the expressions unless there is an
	// @, or ten digits in a run of digits and spaces.
	at, run, longest := false, 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '@':
			at = true
			run = 0
		case c >= '0' && c <= '9':
			run++
			longest = max(longest, run)
		case c == ' ' || c == '+':
		default:
			run = 0
		}
	}
	if at {
		s = emailPattern.ReplaceAllStringFunc(s, Email)
	}
	if longest < 10 {
		return s
	}
	// A run of digits inside a word (an id such as a UUID's last group)
	// is not a phone number: only whole runs are masked.
	var b strings.Builder
	last := 0
	for _, m := range phonePattern.FindAllStringIndex(s, -1) {
		if inWord(s, m[0]-1) || inWord(s, m[1]) || countDigits(s[m[0]:m[1]]) < 10 {
			continue
		}
		b.WriteString(s[last:m[0]])
		b.WriteString(Mobile(s[m[0]:m[1]]))
		last = m[1]
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// inWord reports whether s[i] exists and belongs to a word or an id.
func inWord(s string, i int) bool {
	if i < 0 || i >= len(s) {
		return false
	}
	c := s[i]
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '-'
}

func countDigits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			n++
		}
	}
	return n
}

// ReplaceAttr is a slog.HandlerOptions.ReplaceAttr that masks personal data
// in every string and error attribute, so that no log line carries an email
// address or phone number whoever wrote it.
func ReplaceAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); s != "" {
			a.Value = slog.StringValue(String(s))
		}
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			a.Value = slog.StringValue(String(err.Error()))
		}
	}
	return a
}
