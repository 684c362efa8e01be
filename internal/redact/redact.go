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
	s = emailPattern.ReplaceAllStringFunc(s, Email)
	return phonePattern.ReplaceAllStringFunc(s, func(p string) string {
		digits := 0
		for _, r := range p {
			if r >= '0' && r <= '9' {
				digits++
			}
		}
		if digits < 10 {
			return p
		}
		return Mobile(p)
	})
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
