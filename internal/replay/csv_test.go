package replay

import (
	"bytes"
	"encoding/csv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
)

func TestWriteCSV(t *testing.T) {
	failures := []*Failure{
		{Event: contact.Event{ID: "ev-1", Subject: "crm-1"}, Data: contact.Failed{CommandID: "crm-1", Reason: contact.ReasonInvalid,
			Message: "the command breaks 2 rules", Errors: []contact.FieldError{{Field: "email"}, {Field: "mobile"}, {Field: "mobile"}},
			Command: []byte(`{"commandId":"crm-1","provider":"pik","name":"Chen Sharma","email":"chen@exmaple","mobile":"+9112","tagId":"vip","metadata":{"CRM Id":"CRM-10395","owner":"Asha"},"pik":{"lastName":"Sharma","firstName":"Chen"}}`)}},
		{Event: contact.Event{ID: "ev-2", Subject: "crm-2"}, Data: contact.Failed{CommandID: "crm-2", Reason: contact.ReasonExhausted,
			Message: "=cmd|' /C calc'!A0", Command: []byte(`{"commandId":"crm-2","name":"Zoë","email":"zoe@example.com","mobile":"9876510012","tagId":"t","companyName":"Acme, Ltd","metadata":{"CRM Id":"CRM-10396"}}`)}},
		{Event: contact.Event{ID: "ev-3", Subject: "CONTACT_COMMANDS:7"}, Data: contact.Failed{Reason: contact.ReasonMalformed, Message: "not JSON", CommandRaw: []byte("x")}},
	}
	var b bytes.Buffer
	require.NoError(t, WriteCSV(&b, failures))
	recs, err := csv.NewReader(&b).ReadAll()
	require.NoError(t, err)
	assert.Equal(t, []string{"failureId", "commandId", "reason", "message", "fields", "provider", "name", "email", "mobile", "tagId", "companyName",
		"metadata.CRM Id", "metadata.owner", "pik"}, recs[0], "a metadata column per key of the exported rows, sorted, then pik")
	assert.Equal(t, []string{"ev-1", "crm-1", "invalid", "the command breaks 2 rules", "email mobile", "pik", "Chen Sharma", "chen@exmaple", "'+9112", "vip", "",
		"CRM-10395", "Asha", `{"firstName":"Chen","lastName":"Sharma"}`}, recs[1], "unmasked; a leading + guarded")
	assert.Equal(t, []string{"ev-2", "crm-2", "exhausted", "'=cmd|' /C calc'!A0", "", "", "Zoë", "zoe@example.com", "9876510012", "t", "Acme, Ltd",
		"CRM-10396", "", ""}, recs[2], "a formula in a message is written inert")
	assert.Equal(t, []string{"ev-3", "CONTACT_COMMANDS:7", "malformed", "not JSON", "", "", "", "", "", "", "", "", "", ""}, recs[3], "a malformed command has no fields")
}
