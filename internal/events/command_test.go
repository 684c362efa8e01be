package events

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/rules"
)

const validBody = `{"commandId":"c-1","provider":"instantpay","name":"  Jane Doe ","email":"jane@example.com",
	"mobile":"+919876543210","tagId":"65a1b2c3d4e5f6a7b8c9d0e1","companyName":"Acme","unknown":{"x":1},
	"pik":{"firstName":"Jane","paymentContactAddress":{"city":"Pune"}},"metadata":{"source":"crm"}}`

func TestDecodeCommandValid(t *testing.T) {
	cmd, err := contact.DecodeCommand([]byte(validBody))
	require.NoError(t, err)
	assert.Equal(t, "c-1", cmd.CommandID)
	assert.Equal(t, "Jane Doe", cmd.Name, "the name is trimmed")
	assert.Equal(t, "919876543210", cmd.MobileDigits())
	assert.JSONEq(t, `{"city":"Pune"}`, string(cmd.PIK["paymentContactAddress"]), "pik fields are kept as raw JSON")
	assert.Equal(t, map[string]string{"source": "crm"}, cmd.Metadata)
	assert.Empty(t, rules.NewValidator().Validate(cmd))
}

func TestDecodeCommandMalformed(t *testing.T) {
	tests := []struct {
		name string
		body []byte
	}{
		{"empty", nil},
		{"white space", []byte("  \n ")},
		{"not JSON", []byte("hello")},
		{"JSON array", []byte(`[{"name":"x"}]`)},
		{"JSON string", []byte(`"name"`)},
		{"JSON null", []byte(`null`)},
		{"truncated object", []byte(`{"name":"x"`)},
		{"binary", []byte{0xff, 0xfe, 0x00, 0x01}},
		{"too large", append(append([]byte(`{"name":"`), bytes.Repeat([]byte("a"), contact.MaxCommandSize)...), `"}`...)},
		{"trailing garbage", []byte(`{"name":"x"} {}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := contact.DecodeCommand(tt.body)
			var derr *contact.DecodeError
			require.ErrorAs(t, err, &derr)
			assert.Equal(t, contact.ReasonMalformed, derr.Reason)
			assert.NotEmpty(t, derr.Message, "a malformed body is explained")
		})
	}
}

func TestDecodeCommandWrongTypesReportsEveryField(t *testing.T) {
	_, err := contact.DecodeCommand([]byte(`{"name":"Jane","email":7,"mobile":9876543210,"tagId":true,"pik":[],"metadata":{"a":1}}`))
	var derr *contact.DecodeError
	require.ErrorAs(t, err, &derr)
	assert.Equal(t, contact.ReasonInvalid, derr.Reason)
	var fields []string
	for _, fe := range derr.Errors {
		fields = append(fields, fe.Field)
		assert.Equal(t, "type", fe.Rule)
	}
	assert.Equal(t, []string{"email", "metadata", "mobile", "pik", "tagId"}, fields, "every wrong-typed field is reported, sorted")
}
