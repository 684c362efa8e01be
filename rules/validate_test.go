package rules

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/contactrelay/contactrelay/contact"
)

func TestValidateRules(t *testing.T) {
	base := contact.Command{Name: "Jane", Email: "jane@example.com", Mobile: "9876543210", TagID: "t"}
	tests := []struct {
		name   string
		change func(*contact.Command)
		want   map[string]string // field → rule
	}{
		{"valid", func(*contact.Command) {}, nil},
		{"plus and 15 digits", func(c *contact.Command) { c.Mobile = "+123456789012345" }, nil},
		{"missing mandatory fields", func(c *contact.Command) { *c = contact.Command{} },
			map[string]string{"name": "required", "email": "required", "mobile": "required", "tagId": "required"}},
		{"bad email", func(c *contact.Command) { c.Email = "jane@" }, map[string]string{"email": "email"}},
		{"mobile too short", func(c *contact.Command) { c.Mobile = "987654321" }, map[string]string{"mobile": "mobile"}},
		{"mobile too long", func(c *contact.Command) { c.Mobile = "1234567890123456" }, map[string]string{"mobile": "mobile"}},
		{"mobile with letters", func(c *contact.Command) { c.Mobile = "98765x3210" }, map[string]string{"mobile": "mobile"}},
		{"mobile with inner plus", func(c *contact.Command) { c.Mobile = "98765+43210" }, map[string]string{"mobile": "mobile"}},
		{"name too long", func(c *contact.Command) { c.Name = strings.Repeat("é", 201) }, map[string]string{"name": "max"}},
		{"name of 200 runes", func(c *contact.Command) { c.Name = strings.Repeat("é", 200) }, nil},
		{"company too long", func(c *contact.Command) { c.CompanyName = strings.Repeat("a", 201) }, map[string]string{"companyName": "max"}},
		{"command id too long", func(c *contact.Command) { c.CommandID = strings.Repeat("a", 129) }, map[string]string{"commandId": "max"}},
		{"too much metadata", func(c *contact.Command) {
			c.Metadata = map[string]string{}
			for i := range 33 {
				c.Metadata[strings.Repeat("k", i+1)] = "v"
			}
		}, map[string]string{"metadata": "max"}},
	}
	v := NewValidator()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := base
			tt.change(&cmd)
			got := map[string]string{}
			for _, fe := range v.Validate(cmd) {
				got[fe.Field] = fe.Rule
				assert.NotEmpty(t, fe.Message, "every error has a message")
				assert.Contains(t, fe.Message, fe.Field, "the message names the field")
			}
			if tt.want == nil {
				assert.Empty(t, got)
				return
			}
			assert.Equal(t, tt.want, got)
		})
	}
}
