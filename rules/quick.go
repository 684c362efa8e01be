package rules

import (
	"unicode/utf8"

	"github.com/contactrelay/contactrelay/contact"
)

// quickValid reports, without reflection, the validator's walk or the
// e-mail rule's parser and regular expression, that cmd certainly keeps
// every rule of contact.Command's validate tags. False means only "not
// certain": Validate then asks the validator, which finds the broken
// rules and says why. The checks are those of the tags, written by hand;
// the e-mail check accepts only a plain form (quickEmail) that the
// validator's rule accepts too. FuzzQuickValid and FuzzQuickEmail hold
// Validate's verdict equal to the validator's.
func quickValid(cmd *contact.Command) bool {
	// commandId: omitempty,min=1,max=128,printable
	if cmd.CommandID != "" && !quickText(cmd.CommandID, 128, false) {
		return false
	}
	// name: required,max=200,printable,visible
	if cmd.Name == "" || !quickText(cmd.Name, 200, true) {
		return false
	}
	// email: required,email,max=254
	if len(cmd.Email) > 254 || !quickEmail(cmd.Email) {
		return false
	}
	// mobile: required,mobile
	if !isMobile(cmd.Mobile) {
		return false
	}
	// tagId: required,max=128,printable
	if cmd.TagID == "" || !quickText(cmd.TagID, 128, false) {
		return false
	}
	// companyName: omitempty,max=200,printable,visible
	if cmd.CompanyName != "" && !quickText(cmd.CompanyName, 200, true) {
		return false
	}
	// metadata: max=32,dive,keys,max=128,printable,endkeys,max=1024
	if len(cmd.Metadata) > 32 {
		return false
	}
	for k, v := range cmd.Metadata {
		if !quickText(k, 128, false) || utf8.RuneCountInString(v) > 1024 {
			return false
		}
	}
	return true
}

// quickText reports whether s has at most maxRunes characters, keeps the
// printable rule and, when mustSee, the visible rule.
func quickText(s string, maxRunes int, mustSee bool) bool {
	if utf8.RuneCountInString(s) > maxRunes {
		return false
	}
	if _, bad := unprintable(s); bad {
		return false
	}
	return !mustSee || visible(s)
}

// quickEmail reports whether s is an address of the plain form
// local@domain, in ASCII: the local part dot-separated atoms of letters,
// digits and !#$%&'*+-/=?^_`{|}~; the domain two or more dot-separated
// labels of letters, digits and inner hyphens, the last of letters only.
// Every such address is valid by the validator's e-mail rule (net/mail
// parses it, its regular expression matches it); an address of any other
// form is left to the rule itself.
func quickEmail(s string) bool {
	at := -1
	for i := 0; i < len(s); i++ {
		if s[i] == '@' {
			at = i
			break
		}
	}
	if at <= 0 {
		return false
	}
	return quickLocal(s[:at]) && quickDomain(s[at+1:])
}

// quickLocal reports whether s is dot-separated non-empty atoms of atext
// characters in ASCII.
func quickLocal(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if s[i-1] == '.' {
				return false
			}
		case isLetter(c) || isDigit(c):
		default:
			switch c {
			case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '/', '=', '?', '^', '_', '`', '{', '|', '}', '~':
			default:
				return false
			}
		}
	}
	return true
}

// quickDomain reports whether s is two or more dot-separated labels of
// ASCII letters, digits and hyphens, none starting or ending with a
// hyphen, the last of letters only.
func quickDomain(s string) bool {
	labels, start := 0, 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			c := s[i]
			if !isLetter(c) && !isDigit(c) && c != '-' {
				return false
			}
			continue
		}
		label := s[start:i]
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		labels++
		start = i + 1
		if i == len(s) {
			for j := 0; j < len(label); j++ {
				if !isLetter(label[j]) {
					return false
				}
			}
		}
	}
	return labels >= 2
}

func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
