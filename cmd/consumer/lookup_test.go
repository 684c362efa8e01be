package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/clients/instantpay"
	"github.com/contactrelay/contactrelay/internal/sandbox"
)

// TestAmbiguousCreatesAgainstAPagedList is the paging issue's scenario
// through the service: InstantPay lists its contacts 20 a page and already
// holds 500 of them; half of 40 commands' create calls store the contact
// and then hang. Each is reconciled by a lookup that reads the whole list,
// whichever order the list comes in: no contact is created twice.
func TestAmbiguousCreatesAgainstAPagedList(t *testing.T) {
	t.Parallel() // it mostly waits: on backoff, an ack wait or a rate limit
	for _, newestFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("newest first %t", newestFirst), func(t *testing.T) {
			e := newTestEnv(t, func(c *sandbox.InstantPayConfig) {
				c.Paging, c.PageSize, c.MaxPageSize, c.NewestFirst = sandbox.PagingAlways, 20, 20, newestFirst
			})
			e.quietLogs = true
			client, err := instantpay.New(instantpay.Config{BaseURL: e.vars["INSTANTPAY_BASE_URL"], ClientID: "id", ClientSecret: "secret", Timeout: 5 * time.Second})
			require.NoError(t, err)
			for i := range 500 {
				_, err := client.Create(context.Background(), contact.Command{CommandID: fmt.Sprintf("old-%d", i), Name: "Old",
					Email: fmt.Sprintf("old%d@example.com", i), Mobile: fmt.Sprintf("+9198%08d", i), TagID: tagID})
				require.NoError(t, err)
			}
			e.vars["RETRY_MAX_ELAPSED"] = "10s"
			e.vars["CIRCUIT_FAILURES"] = "1000" // the hangs are the point here, not the circuit
			// A lookup reads 27 pages within 3 × PROVIDER_TIMEOUT: room for a
			// loaded machine (the hung creates wait this long each).
			e.vars["PROVIDER_TIMEOUT"] = "2s"
			e.vars["MAX_DELIVER"] = "10"
			e.ipay.Inject(sandbox.Fault{Times: 20, CreateThenHang: true})
			e.start(t)
			ids := make([]string, 40)
			for i := range ids {
				ids[i] = fmt.Sprintf("page-%02d", i)
				e.publish(t, command(ids[i]))
			}
			evs := e.awaitEvents(t, len(ids), 60*time.Second)
			assertExactlyOnce(t, evs, ids)
			reconciled := 0
			for _, ev := range evs {
				require.Equal(t, contact.SubjectCreated, ev.Type, "%s: %s", ev.Subject, ev.Data)
				if data[contact.Created](t, ev).Upstream["reconciled"] == true {
					reconciled++
				}
			}
			// Every hung create was found by a lookup past page 1; on a
			// loaded machine a slow answer past PROVIDER_TIMEOUT is one more
			// ambiguous create, found the same way.
			assert.GreaterOrEqual(t, reconciled, 20, "every ambiguous create was found by a lookup past page 1")
			assert.Zero(t, e.ipay.Duplicates(), "no contact created twice")
			assert.Len(t, e.ipay.Contacts(), 540)
		})
	}
}
