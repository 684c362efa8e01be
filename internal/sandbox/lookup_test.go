package sandbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/clients/instantpay"
	"github.com/contactrelay/contactrelay/internal/clients/pik"
	"github.com/contactrelay/contactrelay/internal/sandbox"
)

const tagID = "0123456789abcdef01234567"

func ipayCommand(i int) contact.Command {
	return contact.Command{CommandID: fmt.Sprintf("cmd-%d", i), Provider: instantpay.Name, Name: "User",
		Email: fmt.Sprintf("user%d@example.com", i), Mobile: fmt.Sprintf("+9198%08d", i), TagID: tagID}
}

// TestInstantPayLookupPaged is the case: a list paged 20 at a time
// that holds 500 contacts, in either order; the client's lookup must find
// a contact on any page and call one absent only after the last.
func TestInstantPayLookupPaged(t *testing.T) {
	for _, newestFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("newest first %t", newestFirst), func(t *testing.T) {
			sb := sandbox.NewInstantPay(sandbox.InstantPayConfig{Paging: sandbox.PagingAlways, PageSize: 20, MaxPageSize: 20, NewestFirst: newestFirst})
			srv := httptest.NewServer(sb)
			t.Cleanup(srv.Close)
			t.Cleanup(sb.Close)
			client, err := instantpay.New(instantpay.Config{BaseURL: srv.URL, ClientID: "id", ClientSecret: "secret", Timeout: 5 * time.Second})
			require.NoError(t, err, "building the client")
			ctx := context.Background()
			for i := range 500 {
				_, err := client.Create(ctx, ipayCommand(i))
				require.NoError(t, err, "create %d", i)
			}
			for _, i := range []int{0, 250, 499} {
				contact, found, err := client.Lookup(ctx, ipayCommand(i))
				require.NoError(t, err, "lookup %d", i)
				assert.True(t, found, "contact %d is found on whichever page it is", i)
				assert.NotEmpty(t, contact.ID, "its id")
			}
			_, found, err := client.Lookup(ctx, ipayCommand(500))
			require.NoError(t, err, "25 pages are within the bound")
			assert.False(t, found, "a contact never created is absent")
		})
	}
}

func TestPIKLookupPaged(t *testing.T) {
	sb := sandbox.NewPIK(sandbox.PIKConfig{MaxPageSize: 1, NewestFirst: true})
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	t.Cleanup(sb.Close)
	client, err := pik.New(pik.Config{BaseURL: srv.URL, AppID: "app", AppSecret: "secret", Timeout: 5 * time.Second})
	require.NoError(t, err, "building the client")
	ctx := context.Background()
	// Codes that all contain the keyword of the first: one keyword lists 12.
	cmds := make([]contact.Command, 12)
	for i := range cmds {
		cmds[i] = contact.Command{CommandID: fmt.Sprintf("cmd-%d", i), Provider: pik.Name, Name: "User",
			Email: fmt.Sprintf("user%d@example.com", i), Mobile: "+447700900123"}
		cmds[i].PIK = map[string]json.RawMessage{"contactCode": json.RawMessage(fmt.Sprintf(`"CODE%d"`, i))}
		_, err := client.Create(ctx, cmds[i])
		require.NoError(t, err, "create %d", i)
	}
	contact, found, err := client.Lookup(ctx, cmds[1]) // "CODE1" lists CODE11, CODE10, CODE1: page 3 of 1
	require.NoError(t, err, "lookup")
	assert.True(t, found, "found beyond page 1")
	assert.Equal(t, "CODE1", contact.ID, "the exact code")
}
