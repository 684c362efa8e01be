package rules

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
)

// emailEdges are addresses at the edges of quickEmail's plain form and of
// the validator's e-mail rule.
var emailEdges = []string{
	"", "@", "a@", "@b.co", "a@b", "a@b.c", "a@b.co", "jane@example.com", "Jane.Doe@Example.COM",
	"a.b.c@d.e.f", "a..b@c.de", ".a@c.de", "a.@c.de", "a@.c.de", "a@c..de", "a@c.de.", "a@c.de..",
	"a@-c.de", "a@c-.de", "a@c-d.de", "a@c.d-e", "a@c.-de", "a@c.de-", "a@1.de", "a@c.1e", "a@c.d1", "a@c.12",
	"a@c.e1f", "a@c.d~e", "a@c~.de", "a@c_d.de", "a@[1.2.3.4]", "a@b@c.de", "a b@c.de", " a@c.de", "a@c.de ",
	"\"a\"@c.de", "\"a b\"@c.de", "a(b)@c.de", "a@c.de (Jane)", "Jane <a@c.de>", "<a@c.de>",
	"!#$%&'*+-/=?^_`{|}~@c.de", "a!b@c.de", "a\\b@c.de", "a,b@c.de", "a;b@c.de", "a:b@c.de",
	"a\x00@c.de", "a\t@c.de", "a\n@c.de", "é@c.de", "a@é.de", "a@c.dé", "a@c.de\u00a0", "a@ｃ.de",
	"a@c.de\r\n", "x@" + strings.Repeat("a", 250) + ".de", strings.Repeat("a", 64) + "@c.de",
	strings.Repeat("a", 65) + "@c.de", "a@" + strings.Repeat("b", 63) + ".de", "a@" + strings.Repeat("b", 64) + ".de",
	"a@b.c.d.e.f.g.h", "A@B.CO", "0@0.a", "a@0-0.a", "a@c.d.", "a@c.d.e.",
}

// FuzzQuickEmail holds quickEmail to the validator's e-mail rule: every
// address it accepts, the rule accepts (go test -run '^$' -fuzz
// FuzzQuickEmail ./rules).
func FuzzQuickEmail(f *testing.F) {
	for _, s := range emailEdges {
		f.Add(s)
	}
	v := NewValidator()
	f.Fuzz(func(t *testing.T, s string) {
		if quickEmail(s) && v.v.Var(s, "email") != nil {
			t.Errorf("quickEmail(%q) accepts what the validator's e-mail rule refuses", s)
		}
	})
}

// FuzzQuickValid holds Validate (its quick check first) equal to the
// validator's verdict, errors and messages included, for any command the
// fuzzer makes (go test -run '^$' -fuzz FuzzQuickValid ./rules).
func FuzzQuickValid(f *testing.F) {
	add := func(id, name, email, mobile, tag, company, key, value string, entries uint8) {
		f.Add(id, name, email, mobile, tag, company, key, value, entries)
	}
	add("c-1", "Jane Doe", "jane@example.com", "+919876543210", "65a1b2c3d4e5f6a7b8c9d0e1", "", "sentAt", "1", 1)
	add("", "Jane Doe", "jane@example.com", "9876543210", "t", "Acme", "", "", 0)
	add(strings.Repeat("c", 128), strings.Repeat("n", 200), "a@b.co", "123456789012345", strings.Repeat("t", 128), strings.Repeat("é", 200), strings.Repeat("k", 128), strings.Repeat("v", 1024), 32)
	add(strings.Repeat("c", 129), strings.Repeat("n", 201), "a@b", "12345678901234567", strings.Repeat("t", 129), strings.Repeat("é", 201), strings.Repeat("k", 129), strings.Repeat("v", 1025), 33)
	add("c\u202e1", "\u200b", "a..b@c.de", "+91 98765 43210", "t\x00", " ", "k\n", "\x00", 2)
	add("\xff", "Ja\xffne", "jane@example.com\n", "", "", "\u3164", "\xff", "\xff", 1)
	add("c", "  Jane  ", "\"j\"@example.com", "+9198765432101", "٣", "\u0301", "", "v", 3)
	add("c", "Jane", "", "9876543210", "t", "", "k", "", 0)
	for _, e := range emailEdges {
		add("c-1", "Jane Doe", e, "+919876543210", "t", "", "k", "v", 1)
	}
	v := NewValidator()
	f.Fuzz(func(t *testing.T, id, name, email, mobile, tag, company, key, value string, entries uint8) {
		cmd := contact.Command{CommandID: id, Name: name, Email: email, Mobile: mobile, TagID: tag, CompanyName: company}
		if entries > 0 {
			cmd.Metadata = map[string]string{key: value}
			for i := 1; i < int(entries%40); i++ {
				cmd.Metadata[key+strconv.Itoa(i)] = value
			}
		}
		got, want := v.Validate(cmd), v.validate(cmd)
		require.Equal(t, want, got, "Validate and the validator disagree on %+v", cmd)
	})
}

// TestQuickValidTakesTheCommonCase: a typical valid command is decided by
// the quick check alone (the validator is not asked), and each single
// broken rule leaves it to the validator.
func TestQuickValidTakesTheCommonCase(t *testing.T) {
	valid := contact.Command{CommandID: "c-1", Provider: "instantpay", Name: "Jane Doe", Email: "jane.doe+tag@mail.example.co.in",
		Mobile: "+919876543210", TagID: "65a1b2c3d4e5f6a7b8c9d0e1", CompanyName: "Acme", Metadata: map[string]string{"sentAt": "1234567890"}}
	assert.True(t, quickValid(&valid), "a typical valid command is certain without the validator")
	for name, change := range map[string]func(*contact.Command){
		"commandId too long":   func(c *contact.Command) { c.CommandID = strings.Repeat("c", 129) },
		"name missing":         func(c *contact.Command) { c.Name = "" },
		"name invisible":       func(c *contact.Command) { c.Name = "\u3164" },
		"email missing":        func(c *contact.Command) { c.Email = "" },
		"email not plain":      func(c *contact.Command) { c.Email = "\"jane\"@example.com" },
		"mobile bad":           func(c *contact.Command) { c.Mobile = "12345" },
		"tagId unprintable":    func(c *contact.Command) { c.TagID = "t\u202e" },
		"companyName too long": func(c *contact.Command) { c.CompanyName = strings.Repeat("a", 201) },
		"metadata value long":  func(c *contact.Command) { c.Metadata = map[string]string{"k": strings.Repeat("v", 1025)} },
	} {
		cmd := valid
		change(&cmd)
		assert.False(t, quickValid(&cmd), "%s: left to the validator", name)
	}
}
