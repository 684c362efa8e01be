// Package redact keeps what must not be seen out of text bound for logs,
// events and health endpoints: it masks personal data (email addresses,
// phone numbers) by their structure, in any script, and scrubs known
// secrets (credentials, tokens) wherever they occur (see Secrets).
package redact

import (
	"log/slog"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxQuotedLocal bounds how far back a quoted local part ("jane doe"@…) is
// looked for: RFC 5321 allows 64 octets, and escapes may double them.
const maxQuotedLocal = 130

// minPhoneDigits is how many digits a run needs to be taken for a phone
// number: the shortest national numbers the service accepts.
const minPhoneDigits = 10

// Email masks an email address, keeping the first character of its local
// part (a whole character, whatever its script; for a quoted local part
// the first character inside the quotes) and its domain:
// "jane.doe@example.com" and "\"jane doe\"@example.com" become
// "j***@example.com". Anything without a local part becomes "***".
func Email(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 {
		return "***"
	}
	local := s[:at]
	if len(local) >= 2 && local[0] == '"' && local[len(local)-1] == '"' {
		local = local[1 : len(local)-1]
	}
	if local == "" {
		return "***"
	}
	return firstRune(local) + "***@" + s[at+1:]
}

// Mobile masks a phone number, keeping its last two digits (of any
// script): "+919876543210" and "+91 98765 43210" become "***10". A value
// with fewer than three digits becomes "***".
func Mobile(s string) string {
	var last [2]rune
	n := 0
	for _, r := range s {
		if unicode.IsDigit(r) {
			last[0], last[1] = last[1], r
			n++
		}
	}
	if n < 3 {
		return "***"
	}
	return "***" + string(last[:])
}

// String masks every email address and phone number found in free text,
// such as a provider's error message, recognising them by structure rather
// than by an ASCII pattern:
//
//   - an email address is a local part, "@" and a domain of at least two
//     labels. The local part is a dot-atom of letters, digits and marks of
//     any script and the RFC 5322 symbols, or a quoted string (also in its
//     JSON-escaped form \"…\"); the characters = / ? & : , ; quotes,
//     brackets and spaces end it, as they usually separate an address from
//     what precedes it in log text. Only the local part is masked, to its
//     first character and "***"; the domain stays.
//   - a phone number is a run of at least ten digits (of any script),
//     optionally led by "+" or "(", grouped by spaces, hyphens, dots or
//     parentheses ("+91 98765 43210", "(987) 654-3210"), that is not part of
//     a word or an id (a digit group of a UUID) and not a time of day. It is
//     masked to "***" and its last two digits.
//
// Text without an "@" and without ten digits is returned as it is, at the
// cost of one pass over it. The work is linear in the length of s.
func String(s string) string {
	at, digits := false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '@':
			at = true
		case c >= '0' && c <= '9':
			digits++
		case c >= utf8.RuneSelf:
			// Perhaps a digit of another script: count them properly.
			at = at || strings.IndexByte(s[i:], '@') >= 0
			digits = countDigits(s)
			i = len(s)
		}
	}
	if at {
		s = maskEmails(s)
	}
	if digits >= minPhoneDigits {
		s = maskPhones(s)
	}
	return s
}

func countDigits(s string) int {
	n := 0
	for _, r := range s {
		if unicode.IsDigit(r) {
			n++
		}
	}
	return n
}

// maskEmails masks the local part of every email address in s.
func maskEmails(s string) string {
	var b strings.Builder
	last := 0  // s[:last] is written out
	floor := 0 // no local part starts before the end of the last address
	for from := 0; from < len(s); {
		i := strings.IndexByte(s[from:], '@')
		if i < 0 {
			break
		}
		at := from + i
		from = at + 1
		start, local, ok := localPart(s, floor, at)
		if !ok {
			continue
		}
		end, ok := domainEnd(s, at+1)
		if !ok {
			continue
		}
		if b.Len() == 0 {
			b.Grow(len(s))
		}
		b.WriteString(s[last:start])
		b.WriteString(firstRune(local))
		b.WriteString("***")
		last, floor, from = at, end, end
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// localPart finds the local part that ends at s[at] ("@"), starting no
// earlier than lo. It returns where the text to mask starts and the local
// part itself (a quoted one without its quotes).
func localPart(s string, lo, at int) (start int, local string, ok bool) {
	if at > lo && s[at-1] == '"' {
		return quotedLocal(s, lo, at)
	}
	start = at
	for start > lo {
		r, size := utf8.DecodeLastRuneInString(s[lo:start])
		if !isLocalRune(r) {
			break
		}
		start -= size
	}
	// A leading dot or apostrophe is punctuation of the text around it.
	for start < at && (s[start] == '.' || s[start] == '\'') {
		start++
	}
	if start == at {
		return 0, "", false
	}
	return start, s[start:at], true
}

// quotedLocal finds a quoted local part "…" (or \"…\" inside a JSON
// string) that ends at s[at-1].
func quotedLocal(s string, lo, at int) (start int, local string, ok bool) {
	closing, escaped := at-1, false
	if closing > lo && s[closing-1] == '\\' {
		closing, escaped = closing-1, true
	}
	floor := max(lo, closing-maxQuotedLocal)
	for j := closing - 1; j >= floor; j-- {
		if s[j] != '"' {
			continue
		}
		isEscaped := j > lo && s[j-1] == '\\'
		if isEscaped != escaped {
			if escaped {
				return 0, "", false // a bare quote inside \"…\": not a local part
			}
			continue // an escaped quote inside "…"
		}
		open := j
		if escaped {
			open--
		}
		content := s[j+1 : closing]
		if content == "" || content[0] == ',' || content[0] == ':' {
			return 0, "", false // JSON punctuation between two strings
		}
		// "key":"@host" and ["", "@host"] are JSON, not quoted local
		// parts: the opening quote of one follows no letter, digit or
		// quote.
		if r, _ := utf8.DecodeLastRuneInString(s[lo:open]); open > lo && (isWordRune(r) || r == '"') {
			return 0, "", false
		}
		return open, content, true
	}
	return 0, "", false
}

// domainEnd returns where the domain that starts at s[from] ends, and
// whether it is one: at least two labels of letters, digits, marks and
// hyphens (any script), the last not all digits.
func domainEnd(s string, from int) (int, bool) {
	end := from
	for end < len(s) {
		r, size := utf8.DecodeRuneInString(s[end:])
		if r != '.' && !isDomainRune(r) {
			break
		}
		end += size
	}
	dom := s[from:end]
	if k := strings.Index(dom, ".."); k >= 0 {
		dom = dom[:k]
	}
	// A trailing dot or hyphen ends the sentence, not the domain.
	dom = strings.TrimRight(dom, ".-")
	dot := strings.LastIndexByte(dom, '.')
	if dot <= 0 || dom[0] == '.' {
		return 0, false
	}
	tld := dom[dot+1:]
	if strings.IndexFunc(tld, func(r rune) bool { return !unicode.IsDigit(r) }) < 0 {
		return 0, false // an IP address or a version, not a domain
	}
	return from + len(dom), true
}

// isLocalRune reports whether r may be part of an unquoted local part.
func isLocalRune(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' ||
			strings.ContainsRune(".!#$%'*+-^_`{|}~", r)
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// isDomainRune reports whether r may be part of a domain label.
func isDomainRune(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// isWordRune reports whether r belongs to a word or an id.
func isWordRune(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// firstRune returns the first character of s (a whole UTF-8 sequence).
func firstRune(s string) string {
	_, size := utf8.DecodeRuneInString(s)
	return s[:size]
}

// maskPhones masks every phone number in s.
func maskPhones(s string) string {
	var b strings.Builder
	last := 0
	for from := 0; from < len(s); {
		run, ok := nextDigitRun(s, from)
		if !ok {
			break
		}
		from = run.end
		start, end, digits, tail, ok := run.phone(s)
		if !ok || digits < minPhoneDigits {
			continue
		}
		if b.Len() == 0 {
			b.Grow(len(s))
		}
		b.WriteString(s[last:start])
		b.WriteString("***")
		b.WriteString(string(tail[:]))
		last = end
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// digitRun is a run of digit groups: it starts with a digit, or "+" or "("
// before one, and ends with a digit; groups are joined by one to three of
// space, hyphen, dot and parentheses. Its chunks are the groups joined by
// hyphens and dots alone ("654-3210"); a space or a parenthesis parts two
// chunks ("(987) 654-3210" has two).
type digitRun struct {
	start, end int
	digits     int
	tail       [2]rune // the last two digits

	chunks                 int
	firstDigits, secondAt  int     // the first chunk's digits; where the second starts
	lastDigits, beforeLast int     // the last chunk's digits; where the one before it ends
	tailBeforeLast         [2]rune // the last two digits before the last chunk
}

// nextDigitRun returns the first digit run at or after s[from].
func nextDigitRun(s string, from int) (digitRun, bool) {
	run := digitRun{start: -1}
	for i := from; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if unicode.IsDigit(r) {
			run.start = i
			break
		}
		if r == '+' || r == '(' {
			if n, _ := utf8.DecodeRuneInString(s[i+size:]); unicode.IsDigit(n) {
				run.start = i
				break
			}
		}
		i += size
	}
	if run.start < 0 {
		return run, false
	}
	i := run.start
	if s[i] == '+' || s[i] == '(' {
		i++
	}
	sepAt, seps, soft := -1, 0, false
	chunkDigits := 0
scan:
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case unicode.IsDigit(r):
			if sepAt >= 0 && soft {
				if run.chunks == 0 {
					run.firstDigits, run.secondAt = chunkDigits, i
				}
				run.chunks++
				run.beforeLast, run.tailBeforeLast = sepAt, run.tail
				chunkDigits = 0
			}
			sepAt, seps, soft = -1, 0, false
			run.digits++
			chunkDigits++
			run.tail[0], run.tail[1] = run.tail[1], r
			i += size
			run.end = i
		case isPhoneSeparator(r) && seps < 3:
			if sepAt < 0 {
				sepAt = i
			}
			seps++
			soft = soft || (r != '-' && r != '.')
			i += size
		default:
			break scan
		}
	}
	run.chunks++
	run.lastDigits = chunkDigits
	if run.chunks == 1 {
		run.firstDigits = chunkDigits
	}
	return run, true
}

// phone returns the part of the run that may be a phone number: the whole
// run, less a first chunk that is joined to a word or an id before it
// ("id123 9876543210") and a last chunk joined to one after it, or to a time
// of day ("2026-11-21 10:00"). ok is false when nothing is left.
func (run digitRun) phone(s string) (start, end, digits int, tail [2]rune, ok bool) {
	start, end, digits, tail = run.start, run.end, run.digits, run.tail
	chunks := run.chunks
	if !startsAlone(s, start) {
		if chunks < 2 {
			return 0, 0, 0, tail, false
		}
		start, digits, chunks = run.secondAt, digits-run.firstDigits, chunks-1
	}
	if !endsAlone(s, end) {
		if chunks < 2 {
			return 0, 0, 0, tail, false
		}
		end, digits, tail = run.beforeLast, digits-run.lastDigits, run.tailBeforeLast
	}
	return start, end, digits, tail, true
}

// isPhoneSeparator reports whether r may group the digits of a phone
// number.
func isPhoneSeparator(r rune) bool {
	switch r {
	case ' ', '-', '.', '(', ')', '\u00a0', '\u2009', '\u202f':
		return true
	}
	return false
}

// startsAlone reports whether what starts at s[i] is not joined to a word
// or an id before it: no letter or digit right before, nor "-", ".", "_"
// or "/" after one, nor ":" after a digit (a time of day).
func startsAlone(s string, i int) bool {
	if i == 0 {
		return true
	}
	r, size := utf8.DecodeLastRuneInString(s[:i])
	if isWordRune(r) {
		return false
	}
	if i-size == 0 {
		return true
	}
	p, _ := utf8.DecodeLastRuneInString(s[:i-size])
	switch r {
	case '-', '.', '_', '/':
		return !isWordRune(p)
	case ':':
		return !unicode.IsDigit(p)
	}
	return true
}

// endsAlone reports whether what ends at s[i] is not joined to a word or an
// id after it: no letter or digit right after, nor "-", ".", "_", "/" or
// ":" before one.
func endsAlone(s string, i int) bool {
	if i == len(s) {
		return true
	}
	r, size := utf8.DecodeRuneInString(s[i:])
	if isWordRune(r) {
		return false
	}
	if i+size == len(s) {
		return true
	}
	n, _ := utf8.DecodeRuneInString(s[i+size:])
	switch r {
	case '-', '.', '_', '/', ':':
		return !isWordRune(n)
	}
	return true
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
