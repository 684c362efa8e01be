package failstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/failstore"
)

// A customer's failure is found by who they are: name, email, mobile
// (however it is spaced), companyName, a metadata value, ignoring case,
// as well as by commandId and message.
func TestSearchFindsACustomer(t *testing.T) {
	wd := newWorld(t)
	ctx := context.Background()
	open := func(id, message, command string) {
		f := contact.Failed{CommandID: id, Provider: "pik", Reason: contact.ReasonInvalid, Message: message, Command: json.RawMessage(command)}
		ev, err := events.NewEvent("", contact.SubjectFailed, id, "", time.Now(), f)
		require.NoError(t, err)
		e, err := failstore.NewEntry(&ev, ev.AppendJSON(nil), false)
		require.NoError(t, err)
		require.NoError(t, wd.w.Open(ctx, e, nil))
	}
	open("CRM-EXPORT-7", "email: not an email", `{"name":"Chen Sharma","email":"Chen.Sharma@Example.com","mobile":"+919876510011","tagId":"t","companyName":"Acme Traders","metadata":{"crmId":"CRM-10395","owner":"Priya"}}`)
	for i := range 60 {
		open(fmt.Sprintf("other-%02d", i), "mobile: too short", fmt.Sprintf(`{"name":"Ravi Kumar","email":"ravi%d@example.com","mobile":"12","tagId":"t","metadata":{"crmId":"CRM-2%04d"}}`, i, i))
	}
	for _, text := range []string{"chen sharma", "CHEN.SHARMA@example.com", "+91 98765 10011", "98765-10011", "acme", "crm-10395", "priya", "crm-export", "NOT AN EMAIL"} {
		var reads []uint64
		page, err := failstore.Search(ctx, wd.js, failstore.Select{}, text, 20, 0, func(read, held uint64) {
			reads = append(reads, read)
			assert.EqualValues(t, 61, held)
		})
		require.NoError(t, err, text)
		require.Len(t, page.Failures, 1, text)
		assert.Equal(t, "CRM-EXPORT-7", page.Failures[0].CommandID, text)
		assert.NotEmpty(t, reads, "progress told")
		assert.EqualValues(t, 61, reads[len(reads)-1], "a search that finds fewer than its limit reads them all")
	}

	page, err := failstore.Search(ctx, wd.js, failstore.Select{}, "ravi", 5, 0, nil)
	require.NoError(t, err)
	require.Len(t, page.Failures, 5, "at most a page")
	assert.Equal(t, "other-59", page.Failures[0].CommandID, "newest first")
	assert.NotZero(t, page.Next)
	assert.Less(t, page.Read, 61, "it stopped once the page was full")

	page, err = failstore.Search(ctx, wd.js, failstore.Select{Reasons: []contact.Reason{contact.ReasonExhausted}}, "chen", 5, 0, nil)
	require.NoError(t, err)
	assert.Empty(t, page.Failures, "the filters hold too")

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = failstore.Search(cctx, wd.js, failstore.Select{}, "nobody", 20, 0, nil)
	assert.ErrorIs(t, err, context.Canceled)
}
