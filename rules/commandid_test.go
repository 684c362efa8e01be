package rules

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
)

func TestCommandIDFromHeader(t *testing.T) {
	for _, tt := range []struct {
		name, v string
		ok      bool
	}{
		{"absent", "", true},
		{"typical", "order-42", true},
		{"at the limit", strings.Repeat("a", MaxCommandIDBytes), true},
		{"too long", strings.Repeat("a", MaxCommandIDBytes+1), false},
		{"thousands of characters", strings.Repeat("a", 5000), false},
		{"not UTF-8", "a\xffb", false},
		{"a control character", "a\x01b", false},
		{"a bidi override", "a\u202eb", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CommandIDFromHeader(tt.v)
			if tt.ok {
				require.NoError(t, err)
				assert.Equal(t, tt.v, got)
				return
			}
			var derr *contact.DecodeError
			require.ErrorAs(t, err, &derr, "a bad header id is a DecodeError")
			assert.Equal(t, contact.ReasonMalformed, derr.Reason)
			assert.Less(t, len(derr.Message), 200, "the message does not echo the header")
			for _, r := range derr.Message {
				assert.False(t, refusedRune(r), "the message does not echo %U", r)
			}
		})
	}
}
