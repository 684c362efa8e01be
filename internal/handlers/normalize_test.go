package handlers

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/clients/provider"
)

// sentProvider creates every contact, keeping the commands it was sent.
type sentProvider struct {
	mu   sync.Mutex
	sent []contact.Command
}

func (p *sentProvider) Validate(contact.Command) []contact.FieldError { return nil }
func (p *sentProvider) Lookup(context.Context, contact.Command) (provider.Contact, bool, error) {
	return provider.Contact{}, false, nil
}
func (p *sentProvider) Create(_ context.Context, cmd contact.Command) (provider.Contact, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent = append(p.sent, cmd)
	return provider.Contact{ID: "ct-1"}, nil
}

func TestHandleNormalisesMobileAndProvider(t *testing.T) {
	p, store := &sentProvider{}, newMemStore()
	h := newTestHandler(t, p, store, func(c *Config) {
		c.Providers = map[string]Provider{"pik": p}
		c.KnownProviders = []string{"pik"}
		c.DefaultProvider = ""
		c.Protection = map[string]Protection{"pik": {BreakerFailures: 1000}}
	})
	decide := func(body string, seq uint64) Decision {
		t.Helper()
		dec := h.Decide(context.Background(), Message{Body: []byte(body), Stream: "CONTACT_COMMANDS", Sequence: seq, Delivery: 1})
		if dec.Write != nil {
			_, ok, err := store.Put(context.Background(), dec.Write.Key, dec.Write.Value, dec.Write.Revision, dec.Write.Expires)
			require.NoError(t, err)
			require.True(t, ok)
		}
		return dec
	}

	first := decide(`{"commandId":"n-1","provider":" Pik ","name":"Jane","email":"jane@example.com","mobile":"+91 98765 10011","tagId":"t"}`, 1)
	require.NotNil(t, first.Event)
	require.Equal(t, contact.SubjectCreated, first.Event.Type, "a spaced mobile and a provider in another case are valid: %s", first.Event.Data)
	require.Len(t, p.sent, 1)
	assert.Equal(t, "+919876510011", p.sent[0].Mobile, "the provider is sent the normalised mobile")
	assert.Equal(t, "pik", p.sent[0].Provider)
	assert.Equal(t, "pik", decodeData[contact.Created](t, first.Event).Provider)

	again := decide(`{"commandId":"n-1","provider":"pik","name":"Jane","email":"jane@example.com","mobile":"+919876510011","tagId":"t"}`, 2)
	require.NotNil(t, again.Event)
	assert.Equal(t, first.Event.ID, again.Event.ID, "the same content written the normal way is answered with its outcome, not a conflict")
	assert.Len(t, p.sent, 1, "and not created twice")

	bad := decide(`{"commandId":"n-2","provider":"PIK","name":"","email":"jane@example.com","mobile":"+91-98765-10012","tagId":"t","extra":1}`, 3)
	require.NotNil(t, bad.Event)
	f := decodeData[contact.Failed](t, bad.Event)
	require.Equal(t, contact.ReasonInvalid, f.Reason)
	assert.JSONEq(t, `{"commandId":"n-2","provider":"pik","name":"","email":"jane@example.com","mobile":"+919876510012","tagId":"t","extra":1}`,
		string(f.Command), "the failed event carries the normalised command, every other member kept")

	kept := decide(`{"commandId":"n-3","provider":"pik","name":"Jane","email":"jane@example.com","mobile":"+44 (0)20 7946 0958","tagId":"t"}`, 4)
	f = decodeData[contact.Failed](t, kept.Event)
	require.Equal(t, contact.ReasonInvalid, f.Reason, "parentheses are not normalised: the meaning is not certain")
	assert.Contains(t, string(f.Command), `"+44 (0)20 7946 0958"`, "a mobile that stays invalid is carried as it came")
}
