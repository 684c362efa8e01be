package rules

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"

	"github.com/contactrelay/contactrelay/contact"
)

func TestValidateTextRules(t *testing.T) {
	base := contact.Command{Name: "Jane", Email: "jane@example.com", Mobile: "9876543210", TagID: "t"}
	tests := []struct {
		name   string
		change func(*contact.Command)
		want   map[string]string // field → rule
	}{
		{"zero-width only name", func(c *contact.Command) { c.Name = "\u200b\u200b" }, map[string]string{"name": "printable"}},
		{"joiners only name", func(c *contact.Command) { c.Name = "\u200d\u200c" }, map[string]string{"name": "visible"}},
		{"NUL in name", func(c *contact.Command) { c.Name = "Ja\x00ne" }, map[string]string{"name": "printable"}},
		{"BEL in name", func(c *contact.Command) { c.Name = "Jane\a" }, map[string]string{"name": "printable"}},
		{"newline in name", func(c *contact.Command) { c.Name = "Jane\nDoe" }, map[string]string{"name": "printable"}},
		{"line separator in name", func(c *contact.Command) { c.Name = "Jane\u2028Doe" }, map[string]string{"name": "printable"}},
		{"right-to-left override in name", func(c *contact.Command) { c.Name = "Jane\u202eeoD" }, map[string]string{"name": "printable"}},
		{"Hangul filler name", func(c *contact.Command) { c.Name = "\u3164" }, map[string]string{"name": "visible"}},
		{"combining mark only name", func(c *contact.Command) { c.Name = "\u0301" }, map[string]string{"name": "visible"}},
		{"zero-width company", func(c *contact.Command) { c.CompanyName = "\u200b" }, map[string]string{"companyName": "printable"}},
		{"blank braille company", func(c *contact.Command) { c.CompanyName = "\u2800" }, map[string]string{"companyName": "visible"}},
		{"newline in commandId", func(c *contact.Command) { c.CommandID = "c-1\n" }, map[string]string{"commandId": "printable"}},
		{"BEL in tagId", func(c *contact.Command) { c.TagID = "t\a" }, map[string]string{"tagId": "printable"}},
		{"bidi override in a metadata key", func(c *contact.Command) { c.Metadata = map[string]string{"k\u202e": "v"} },
			map[string]string{`metadataU+202E`: "printable"}}, // see the path check below
		{"Devanagari with a joiner", func(c *contact.Command) { c.Name = "क्\u200dष" }, nil},
		{"emoji family", func(c *contact.Command) { c.Name = "Jane 👨\u200d👩\u200d👧" }, nil},
		{"accents", func(c *contact.Command) { c.Name, c.CompanyName = "Zoë Ñúñez", "Café & Co" }, nil},
		{"metadata values are opaque", func(c *contact.Command) { c.Metadata = map[string]string{"note": "line 1\nline 2\u202e"} }, nil},
	}
	v := NewValidator()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := base
			tt.change(&cmd)
			got := map[string]string{}
			for _, fe := range v.Validate(cmd) {
				field := fe.Field
				if strings.HasPrefix(field, "metadata[") {
					assert.Equal(t, "metadata[kU+202E]", field, "a metadata key is named without its bidi character")
					field = "metadataU+202E"
				}
				got[field] = fe.Rule
				for _, r := range fe.Field + fe.Message {
					assert.False(t, refusedRune(r), "the error does not echo %U raw: %q", r, fe.Message)
					assert.True(t, r == ' ' || !unicode.IsSpace(r), "the error does not echo white space other than spaces: %q", fe.Message)
				}
				if fe.Rule == "printable" {
					assert.Contains(t, fe.Message, "U+", "the message names the character by code point")
				}
			}
			if tt.want == nil {
				assert.Empty(t, got)
				return
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestASCIIFastPaths: the ASCII shortcuts of refusedRune and visible
// agree with the Unicode classes they stand for, character by character.
func TestASCIIFastPaths(t *testing.T) {
	for r := rune(0); r < utf8.RuneSelf; r++ {
		refused := unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp)
		assert.Equal(t, refused, refusedRune(r), "refusedRune(%U)", r)
		seen := !unicode.In(r, unicode.Z, unicode.C, unicode.M)
		assert.Equal(t, seen, visible(string(r)), "visible(%U)", r)
	}
}
