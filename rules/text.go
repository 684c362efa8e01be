package rules

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The text rules of the command, registered with the validator:
//
//   - printable: no control character (Unicode Cc: NUL, BEL, tab, newline…),
//     no format character (Cf: zero-width space U+200B, the bidi overrides
//     U+202A–U+202E and isolates U+2066–U+2069, U+FEFF…) and no line or
//     paragraph separator (U+2028, U+2029). The zero-width non-joiner and
//     joiner (U+200C, U+200D) are allowed: Indic scripts and emoji
//     sequences use them inside words. Applies to commandId, name, tagId,
//     companyName and the keys of metadata. Metadata values are opaque
//     correlation data and may hold any text; provider is only ever
//     compared with the enabled names (anything else is unroutable).
//   - visible: at least one character that is not white space, a mark, a
//     control or format character, unassigned or private use, or a blank
//     filler (the Hangul fillers U+115F, U+1160, U+3164, U+FFA0 and the
//     blank braille pattern U+2800). Applies to name and companyName.
//
// Messages name the first offending character by its code point, never
// echoing it raw.

// Printable reports whether s keeps the printable rule: no control or
// format character, no line or paragraph separator, and valid UTF-8.
func Printable(s string) bool {
	_, bad := unprintable(s)
	return !bad
}

// unprintable returns the first rune of s that the printable rule refuses,
// and whether there is one. Invalid UTF-8 counts as unprintable.
func unprintable(s string) (rune, bool) {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return r, true
			}
		}
		if refusedRune(r) {
			return r, true
		}
	}
	return 0, false
}

// refusedRune reports whether the printable rule refuses r.
func refusedRune(r rune) bool {
	if r < utf8.RuneSelf {
		// In ASCII the classes refused are the controls alone
		// (TestASCIIFastPaths checks every character).
		return r < 0x20 || r == 0x7f
	}
	if r == '\u200c' || r == '\u200d' {
		return false
	}
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp)
}

// visible reports whether s has a character the visible rule counts.
func visible(s string) bool {
	for _, r := range s {
		if r < utf8.RuneSelf {
			// In ASCII only the space and the controls are not seen
			// (TestASCIIFastPaths checks every character).
			if r > 0x20 && r != 0x7f {
				return true
			}
			continue
		}
		switch r {
		case '\u115f', '\u1160', '\u3164', '\uffa0', '\u2800':
			continue
		}
		if !unicode.In(r, unicode.Z, unicode.C, unicode.M) && r != utf8.RuneError {
			return true
		}
	}
	return false
}

// escapeUnprintable returns s with every rune the printable rule refuses
// written as its code point (U+202E), and every byte of invalid UTF-8 as
// \xFF, so that a field path can name text without carrying its control
// or bidi characters.
func escapeUnprintable(s string) string {
	if _, bad := unprintable(s); !bad {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02X`, s[i])
		case refusedRune(r):
			b.WriteString(codePoint(r))
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// codePoint names r as U+XXXX.
func codePoint(r rune) string { return fmt.Sprintf("U+%04X", r) }
