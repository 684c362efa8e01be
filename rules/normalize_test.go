package rules

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
)

func TestNormalizeMobile(t *testing.T) {
	tests := []struct{ in, want string }{
		{"+919876510011", "+919876510011"},
		{"+91 98765 10011", "+919876510011"},
		{"+91-98765-10011", "+919876510011"},
		{"987.654.3210", "9876543210"},
		{"98765\u00a043210", "9876543210"},             // a spreadsheet's no-break space
		{" 98765 43210 ", "9876543210"},                // surrounding space
		{"+44 (0)20 7946 0958", "+44 (0)20 7946 0958"}, // parentheses: not certain, left as they came
		{"98765 4321", "98765 4321"},                   // still too short: left as it came
		{"98765-x-3210", "98765-x-3210"},
		{"+91 +98765 10011", "+91 +98765 10011"},
		{"", ""},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, NormalizeMobile(tt.in), "NormalizeMobile(%q)", tt.in)
	}
}

func TestNormalizeProvider(t *testing.T) {
	for in, want := range map[string]string{
		"pik": "pik", "Pik": "pik", " PIK ": "pik", "InstantPay": "instantpay", "\tinstantPAY\n": "instantpay",
		"": "", " ": " ", "Pikk": "Pikk", "p ik": "p ik",
	} {
		assert.Equal(t, want, NormalizeProvider(in), "NormalizeProvider(%q)", in)
	}
}

func TestNormalizedCommandIsValid(t *testing.T) {
	cmd := contact.Command{Provider: "Pik", Name: "Jane", Email: "jane@example.com", Mobile: "+91 98765 10011", TagID: "t"}
	require.NotEmpty(t, NewValidator().Validate(cmd), "as it came, the mobile breaks the rule")
	norm, changed := Normalize(cmd)
	assert.True(t, changed)
	assert.Empty(t, NewValidator().Validate(norm), "normalised, it keeps every rule")
	assert.Equal(t, "pik", norm.Provider)
	_, changed = Normalize(norm)
	assert.False(t, changed, "normalising twice changes nothing")
}

func TestNormalizeBody(t *testing.T) {
	body := []byte(`{"mobile":"+91 98765 10011","provider":" Pik","name":"Jane","email":"jane@example.com","tagId":"t","extra":{"kept":true},"metadata":{"crm":"CRM-1"}}`)
	out, changed := NormalizeBody(body)
	require.True(t, changed)
	var got map[string]any
	require.NoError(t, json.Unmarshal(out, &got))
	assert.Equal(t, "+919876510011", got["mobile"])
	assert.Equal(t, "pik", got["provider"])
	assert.Equal(t, map[string]any{"kept": true}, got["extra"], "other members are kept")
	assert.Equal(t, map[string]any{"crm": "CRM-1"}, got["metadata"])

	same := []byte(`{"mobile":"9876543210","name":"Jane"}`)
	out, changed = NormalizeBody(same)
	assert.False(t, changed)
	assert.Equal(t, same, out, "a normalised body is returned as it is")
	out, changed = NormalizeBody([]byte(`{"mobile":1}`))
	assert.False(t, changed, "a body that does not decode is left alone")
	assert.Equal(t, `{"mobile":1}`, string(out))
}
