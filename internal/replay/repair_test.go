package replay

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/rules"
)

// failureOf returns a failure of commandID carrying command.
func failureOf(commandID string, reason contact.Reason, command string) *Failure {
	f := &Failure{
		Event: contact.Event{ID: contact.EventID(commandID, "", contact.SubjectFailed), Subject: commandID},
		Data:  contact.Failed{CommandID: commandID, Reason: reason, Retryable: reason.Retryable()},
	}
	if command != "" {
		f.Data.Command = json.RawMessage(command)
	}
	return f
}

func TestBody(t *testing.T) {
	t.Run("sets the commandId and keeps every other field", func(t *testing.T) {
		f := failureOf("CONTACT_COMMANDS:7", contact.ReasonExhausted,
			`{"name":"Jane","email":"jane@example.com","mobile":"9876543210","tagId":"t","extra":{"x":[1,2]},"pik":{"firstName":"J"}}`)
		body, err := Body(f)
		require.NoError(t, err)
		assert.JSONEq(t, `{"commandId":"CONTACT_COMMANDS:7","name":"Jane","email":"jane@example.com","mobile":"9876543210","tagId":"t","extra":{"x":[1,2]},"pik":{"firstName":"J"}}`, string(body))
	})
	t.Run("replaces a commandId the service did not use", func(t *testing.T) {
		f := failureOf("msg-id-1", contact.ReasonInvalid, `{"commandId":"","name":"Jane"}`)
		body, err := Body(f)
		require.NoError(t, err)
		assert.JSONEq(t, `{"commandId":"msg-id-1","name":"Jane"}`, string(body))
	})
	t.Run("malformed has nothing to replay", func(t *testing.T) {
		f := failureOf("bad-1", contact.ReasonMalformed, "")
		f.Data.CommandRaw = []byte("hello")
		_, err := Body(f)
		assert.ErrorIs(t, err, ErrNothingToReplay)
		_, err = Body(failureOf("bad-2", contact.ReasonInvalid, `[1,2]`))
		assert.ErrorIs(t, err, ErrNothingToReplay, "a command that is not an object")
	})
}

func TestMessage(t *testing.T) {
	f := failureOf("c-1", contact.ReasonExhausted, `{}`)
	msg := Message(f, []byte(`{"commandId":"c-1"}`))
	assert.Equal(t, contact.SubjectCreate, msg.Subject)
	assert.Equal(t, f.Event.ID, msg.Header.Get(contact.HeaderReplayOf), "the generation is the failed event's id")
	assert.Equal(t, "replay:"+f.Event.ID, msg.Header.Get(contact.HeaderMsgID))
	assert.Equal(t, `{"commandId":"c-1"}`, string(msg.Data))
}

func TestParseSet(t *testing.T) {
	s, err := ParseSet("pik.paymentContactAddress.city=Pune=West")
	require.NoError(t, err)
	assert.Equal(t, Set{Path: []string{"pik", "paymentContactAddress", "city"}, Value: "Pune=West"}, s, "the value is all after the first =")
	s, err = ParseSet("companyName=")
	require.NoError(t, err)
	assert.Equal(t, Set{Path: []string{"companyName"}, Value: ""}, s, "an empty value is a value")

	for _, bad := range []string{"email", "=x", "pik..firstName=x", "pik.=x", "commandId=other"} {
		_, err := ParseSet(bad)
		assert.Error(t, err, "%q is refused", bad)
	}
}

func TestRepair(t *testing.T) {
	v := rules.NewValidator()
	invalid := `{"commandId":"inv-1","name":"Jane","email":"jane@","mobile":9876543210,"tagId":"t","metadata":{"k":"v"}}`
	sets := func(ss ...string) []Set {
		var out []Set
		for _, s := range ss {
			set, err := ParseSet(s)
			require.NoError(t, err)
			out = append(out, set)
		}
		return out
	}

	t.Run("a valid repair", func(t *testing.T) {
		body, err := Repair(failureOf("inv-1", contact.ReasonInvalid, invalid),
			sets("email=jane@example.com", "mobile=+919876543210", "pik.firstName=Jane", "metadata.fixed=yes"), v)
		require.NoError(t, err)
		assert.JSONEq(t, `{"commandId":"inv-1","name":"Jane","email":"jane@example.com","mobile":"+919876543210","tagId":"t",
			"pik":{"firstName":"Jane"},"metadata":{"k":"v","fixed":"yes"}}`, string(body))
	})
	t.Run("an invalid repair lists every broken rule", func(t *testing.T) {
		_, err := Repair(failureOf("inv-1", contact.ReasonInvalid, invalid), sets("name=Jane Doe"), v)
		var rerr *RepairError
		require.ErrorAs(t, err, &rerr)
		var fields []string
		for _, fe := range rerr.Errors {
			fields = append(fields, fe.Field)
		}
		assert.Equal(t, []string{"mobile", "email"}, fields, "the wrong type first, as decoding reports it, then the rules")
		assert.Contains(t, rerr.Error(), "nothing was published")
		assert.Contains(t, rerr.Error(), "email must be a valid email address")
	})
	t.Run("a path through a field that is not an object", func(t *testing.T) {
		_, err := Repair(failureOf("inv-1", contact.ReasonInvalid, invalid), sets("name.first=Jane"), v)
		var rerr *RepairError
		require.ErrorAs(t, err, &rerr)
		assert.Contains(t, rerr.Message, "name is not an object")
	})
	t.Run("the commandId is the failure's", func(t *testing.T) {
		body, err := Repair(failureOf("hdr-id", contact.ReasonInvalid, `{"name":"Jane","email":"jane@","mobile":"9876543210","tagId":"t"}`),
			sets("email=jane@example.com"), v)
		require.NoError(t, err)
		cmd, err := contact.DecodeCommand(body)
		require.NoError(t, err)
		assert.Equal(t, "hdr-id", cmd.CommandID)
	})
	t.Run("malformed", func(t *testing.T) {
		_, err := Repair(failureOf("bad-1", contact.ReasonMalformed, ""), sets("name=x"), v)
		assert.ErrorIs(t, err, ErrNothingToReplay)
	})
}

func TestMaskCommand(t *testing.T) {
	got := MaskCommand(json.RawMessage(`{"commandId":"9876543210","name":"Jane","email":"jane@example.com","mobile":"+919876543210",
		"pik":{"firstName":"Jane","paymentContactAccount":{"email":"acct@example.com","phone":"+44 20 7946 0958"}},"note":"<&>"}`))
	assert.JSONEq(t, `{"commandId":"9876543210","name":"Jane","email":"j***@example.com","mobile":"***10",
		"pik":{"firstName":"Jane","paymentContactAccount":{"email":"a***@example.com","phone":"***58"}},"note":"<&>"}`, string(got),
		"email, mobile and personal data in pik are masked; the commandId is not")
	assert.NotContains(t, string(got), `\u003c`, "not HTML-escaped")

	got = MaskCommand(json.RawMessage(`{"email":7,"mobile":9876543210}`))
	assert.JSONEq(t, `{"email":"***","mobile":"***10"}`, string(got), "wrong JSON types are masked too")

	got = MaskCommand(json.RawMessage(`call jane@example.com`))
	assert.JSONEq(t, `"call j***@example.com"`, string(got), "not an object: a masked JSON string")
}
