package schemas

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/clients/provider"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/handlers"
)

// memStore is an in-memory handlers.Store with revisions, as the key-value
// bucket keeps them.
type memStore struct {
	mu   sync.Mutex
	rev  uint64
	vals map[string]memVal
}

type memVal struct {
	val []byte
	rev uint64
}

func newMemStore() *memStore { return &memStore{vals: map[string]memVal{}} }

func (s *memStore) Get(_ context.Context, key string) ([]byte, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.vals[key]
	return v.val, v.rev, nil
}

func (s *memStore) Put(_ context.Context, key string, val []byte, rev uint64, _ bool) (uint64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.vals[key].rev != rev {
		return 0, false, nil
	}
	s.rev++
	s.vals[key] = memVal{val: append([]byte(nil), val...), rev: s.rev}
	return s.rev, true, nil
}

// decideAndRecord has h decide m and writes the decision's record, as the
// runner does before publishing, so that a later step reads it. Steps run
// one at a time: the write always lands.
func decideAndRecord(t *testing.T, h *handlers.Handler, store *memStore, m handlers.Message) handlers.Decision {
	t.Helper()
	dec := h.Decide(context.Background(), m)
	if w := dec.Write; w != nil {
		_, ok, err := store.Put(context.Background(), w.Key, w.Value, w.Revision, w.Expires)
		require.NoError(t, err)
		require.True(t, ok, "the decision's record is written over the revision it was decided on")
	}
	return dec
}

// fakeProvider answers every create call with createErr, or with contact
// when createErr is nil, and every lookup with found (contact) or not.
type fakeProvider struct {
	mu        sync.Mutex
	contact   provider.Contact
	createErr error
	found     bool
	rules     []contact.FieldError // what Validate reports
}

func (p *fakeProvider) set(createErr error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.createErr = createErr
}

func (p *fakeProvider) Validate(contact.Command) []contact.FieldError { return p.rules }

func (p *fakeProvider) Create(context.Context, contact.Command) (provider.Contact, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.createErr != nil {
		return provider.Contact{}, p.createErr
	}
	return p.contact, nil
}

func (p *fakeProvider) Lookup(context.Context, contact.Command) (provider.Contact, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.found {
		return provider.Contact{}, false, nil
	}
	c := p.contact
	c.Upstream = map[string]any{"reconciled": true}
	for k, v := range p.contact.Upstream {
		c.Upstream[k] = v
	}
	return c, true, nil
}

func providerError(class provider.Class, status int, code, msg string) *provider.Error {
	return &provider.Error{Provider: "instantpay", Op: "create", Class: class, HTTPStatus: status, Code: code, Message: msg, RequestID: "req-1"}
}

// step is one delivery in a scenario.
type step struct {
	body      string
	msgID     string
	delivery  int
	createErr error // the providers' answer to create calls in this step
	// replay makes the step a replay of the last event decided: its
	// Contact-Replay-Of is that event's id.
	replay bool
}

const (
	maxDeliver = 2
	goodIP     = `{"commandId":"c-ip","provider":"instantpay","name":"Jane Doe","email":"jane@example.com","mobile":"+919876543210","tagId":"65a1b2c3d4e5f6a7b8c9d0e1","companyName":"Acme","metadata":{"source":"crm","crmId":"42"}}`
	goodPIK    = `{"commandId":"c-pik","provider":"pik","name":"Ravi","email":"ravi@example.com","mobile":"9876543210","tagId":"vip","pik":{"contactCode":"SUP-1","paymentContactAddress":{"country":"SG"}}}`
	noID       = `{"name":"Jane","email":"jane@example.com","mobile":"9876543210","tagId":"65a1b2c3d4e5f6a7b8c9d0e1"}`
)

func TestEmittedEventsValidate(t *testing.T) {
	s := compiled(t)
	ipContact := provider.Contact{ID: "65a1b2c3d4e5f6a7b8c9d0e1", Upstream: map[string]any{
		"contactId": "65a1b2c3d4e5f6a7b8c9d0e1", "userId": json.Number("1201"), "ipayUuid": "h0689a1b2c3d",
		"orderId": "1240311182519QPZXT", "environment": "LIVE", "timestamp": "2026-11-21 15:30:00",
	}}
	pikContact := provider.Contact{ID: "SUP-1", Upstream: map[string]any{"contactCode": "SUP-1", "id": json.Number("1894561237"), "accountId": "acc-7"}}
	manyKeys := make([]string, 33)
	for i := range manyKeys {
		manyKeys[i] = `"k` + strings.Repeat("x", i) + `":"v"`
	}

	tests := []struct {
		name            string
		steps           []step
		noDefault       bool
		breakerFailures uint32 // opens the providers' circuit breakers after so many transient failures; 0: never
		lookupFinds     bool
		rules           []contact.FieldError
		wantType        string
		wantReason      contact.Reason
		wantReplay      bool
	}{
		{name: "created at instantpay", steps: []step{{body: goodIP, delivery: 1}}, wantType: contact.SubjectCreated},
		{name: "created at pik with a numeric id", steps: []step{{body: goodPIK, delivery: 1}}, wantType: contact.SubjectCreated},
		{name: "created, then repeated on redelivery", steps: []step{{body: goodPIK, delivery: 1}, {body: goodPIK, delivery: 2}}, wantType: contact.SubjectCreated},
		{name: "created by the default provider with the Nats-Msg-Id as commandId", steps: []step{{body: noID, msgID: "msg-7", delivery: 1}}, wantType: contact.SubjectCreated},
		{
			name:        "created, reconciled after an ambiguous create",
			steps:       []step{{body: goodIP, delivery: 1, createErr: providerError(provider.Ambiguous, 0, "timeout", "no answer")}},
			lookupFinds: true,
			wantType:    contact.SubjectCreated,
		},
		{
			name:       "rejected with the provider's answer",
			steps:      []step{{body: goodIP, delivery: 1, createErr: providerError(provider.Permanent, 200, "RPI", "Invalid tag id")}},
			wantType:   contact.SubjectFailed,
			wantReason: contact.ReasonRejected,
		},
		{
			name: "exhausted by transient failures",
			steps: []step{
				{body: goodPIK, delivery: 1, createErr: providerError(provider.Transient, 503, "503", "service unavailable")},
				{body: goodPIK, delivery: maxDeliver, createErr: providerError(provider.Transient, 503, "503", "service unavailable")},
			},
			wantType:   contact.SubjectFailed,
			wantReason: contact.ReasonExhausted,
		},
		{
			name: "exhausted by timeouts",
			steps: []step{
				{body: goodIP, delivery: 1, createErr: providerError(provider.Ambiguous, 0, "timeout", "no answer within 10s")},
				{body: goodIP, delivery: maxDeliver, createErr: providerError(provider.Ambiguous, 0, "timeout", "no answer within 10s")},
			},
			wantType:   contact.SubjectFailed,
			wantReason: contact.ReasonExhausted,
		},
		{
			name:       "exhausted past the last delivery, without an answer",
			steps:      []step{{body: goodIP, delivery: maxDeliver + 1}},
			wantType:   contact.SubjectFailed,
			wantReason: contact.ReasonExhausted,
		},
		{
			name:       "invalid, with every broken rule",
			steps:      []step{{body: `{"commandId":"c-bad","name":"  ","email":"jane@","mobile":9876543210,"tagId":"t","metadata":{` + strings.Join(manyKeys, ",") + `}}`, delivery: 1}},
			wantType:   contact.SubjectFailed,
			wantReason: contact.ReasonInvalid,
		},
		{
			name:       "invalid by a provider rule",
			steps:      []step{{body: goodIP, delivery: 1}},
			rules:      []contact.FieldError{{Field: "tagId", Rule: "hexadecimal24", Message: "tagId must be a 24-character hexadecimal id for InstantPay"}},
			wantType:   contact.SubjectFailed,
			wantReason: contact.ReasonInvalid,
		},
		{
			name:       "invalid, with an empty commandId",
			steps:      []step{{body: `{"commandId":"","name":"Jane","email":"jane@example.com","mobile":"9876543210","tagId":"t"}`, msgID: "msg-8", delivery: 1}},
			wantType:   contact.SubjectFailed,
			wantReason: contact.ReasonInvalid,
		},
		{name: "malformed: not an object", steps: []step{{body: `["a"]`, delivery: 1}}, wantType: contact.SubjectFailed, wantReason: contact.ReasonMalformed},
		{name: "malformed: not JSON", steps: []step{{body: `{"name":`, msgID: "msg-9", delivery: 1}}, wantType: contact.SubjectFailed, wantReason: contact.ReasonMalformed},
		{name: "malformed: empty", steps: []step{{body: ``, delivery: 1}}, wantType: contact.SubjectFailed, wantReason: contact.ReasonMalformed},
		{name: "malformed: not UTF-8", steps: []step{{body: "{\"name\":\"\xff\"}", delivery: 1}}, wantType: contact.SubjectFailed, wantReason: contact.ReasonMalformed},
		{name: "malformed: too large", steps: []step{{body: `{"pad":"` + strings.Repeat("x", contact.MaxCommandSize) + `"}`, delivery: 1}}, wantType: contact.SubjectFailed, wantReason: contact.ReasonMalformed},
		{
			name:       "unroutable: unknown provider",
			steps:      []step{{body: `{"commandId":"c-x","provider":"paypal","name":"Jane","email":"jane@example.com","mobile":"9876543210","tagId":"t"}`, delivery: 1}},
			wantType:   contact.SubjectFailed,
			wantReason: contact.ReasonUnroutable,
		},
		{
			name: "conflict: the commandId first used for other content",
			steps: []step{
				{body: goodIP, delivery: 1},
				{body: strings.Replace(goodIP, "Jane Doe", "John Roe", 1), delivery: 1},
			},
			wantType:   contact.SubjectFailed,
			wantReason: contact.ReasonConflict,
		},
		{
			name:       "unroutable: no provider and no default",
			steps:      []step{{body: noID, msgID: "msg-10", delivery: maxDeliver}},
			noDefault:  true,
			wantType:   contact.SubjectFailed,
			wantReason: contact.ReasonUnroutable,
		},
		{
			name: "replay of an exhausted command, created",
			steps: []step{
				{body: goodPIK, delivery: 1, createErr: providerError(provider.Transient, 503, "503", "service unavailable")},
				{body: goodPIK, delivery: maxDeliver, createErr: providerError(provider.Transient, 503, "503", "service unavailable")},
				{body: goodPIK, delivery: 1, replay: true},
			},
			wantType:   contact.SubjectCreated,
			wantReplay: true,
		},
		{
			name: "replay of an exhausted command, exhausted again",
			steps: []step{
				{body: goodIP, delivery: 1, createErr: providerError(provider.Transient, 502, "ISE", "try later")},
				{body: goodIP, delivery: maxDeliver, createErr: providerError(provider.Transient, 502, "ISE", "try later")},
				{body: goodIP, delivery: maxDeliver, replay: true, createErr: providerError(provider.Transient, 502, "ISE", "try later")},
			},
			wantType:   contact.SubjectFailed,
			wantReason: contact.ReasonExhausted,
			wantReplay: true,
		},
		{
			name: "replay while the provider's circuit is open, exhausted again",
			steps: []step{
				{body: goodPIK, delivery: 1, createErr: providerError(provider.Transient, 503, "503", "service unavailable")},
				{body: goodPIK, delivery: maxDeliver, createErr: providerError(provider.Transient, 503, "503", "service unavailable")},
				{body: goodPIK, delivery: maxDeliver, replay: true},
			},
			breakerFailures: 2,
			wantType:        contact.SubjectFailed,
			wantReason:      contact.ReasonExhausted,
			wantReplay:      true,
		},
		{
			name: "replay of an invalid command, invalid again",
			steps: []step{
				{body: `{"commandId":"c-r","name":"Jane","email":"jane@","mobile":"9876543210","tagId":"t"}`, delivery: 1},
				{body: `{"commandId":"c-r","name":"Jane","email":"jane@","mobile":"9876543210","tagId":"t"}`, delivery: 1, replay: true},
			},
			wantType:   contact.SubjectFailed,
			wantReason: contact.ReasonInvalid,
			wantReplay: true,
		},
		{
			name:       "invalid, naming an unknown provider",
			steps:      []step{{body: `{"commandId":"c-y","provider":"paypal","name":"Jane","email":"jane@","mobile":"9876543210","tagId":"t"}`, delivery: 1}},
			wantType:   contact.SubjectFailed,
			wantReason: contact.ReasonInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip := &fakeProvider{contact: ipContact, found: tt.lookupFinds, rules: tt.rules}
			pk := &fakeProvider{contact: pikContact, found: tt.lookupFinds}
			store := newMemStore()
			cfg := handlers.Config{
				Providers:            map[string]handlers.Provider{"instantpay": ip, "pik": pk},
				DefaultProvider:      "instantpay",
				Store:                store,
				MaxDeliver:           maxDeliver,
				RetryInitialInterval: time.Millisecond,
				RetryMaxInterval:     2 * time.Millisecond,
				RetryMaxElapsed:      10 * time.Millisecond,
				RedeliveryDelay:      time.Millisecond,
				CallTimeout:          time.Second,
				Now: func() time.Time {
					return time.Date(2026, 11, 21, 10, 0, 0, 123456789, time.FixedZone("IST", 5*3600+1800))
				},
			}
			if tt.noDefault {
				cfg.DefaultProvider = ""
			}
			// Scenarios of retries want the provider called every time,
			// unless they are about the circuit breaker.
			failures := tt.breakerFailures
			if failures == 0 {
				failures = 1000
			}
			cfg.Protection = map[string]handlers.Protection{"instantpay": {BreakerFailures: failures}, "pik": {BreakerFailures: failures}}
			h, err := handlers.New(cfg)
			require.NoError(t, err)

			var last *contact.Event
			for i, st := range tt.steps {
				ip.set(st.createErr)
				pk.set(st.createErr)
				m := handlers.Message{Body: []byte(st.body), MsgID: st.msgID, Stream: "CONTACT_COMMANDS", Sequence: 5, Delivery: st.delivery}
				if st.replay {
					require.NotNil(t, last, "a replay follows a decided event")
					m.Generation = last.ID
				}
				out := decideAndRecord(t, h, store, m)
				if out.Event == nil {
					require.Equal(t, handlers.Retry, out.Action, "step %d: an outcome without an event is a retry", i)
					continue
				}
				last = out.Event
				doc, err := json.Marshal(out.Event)
				require.NoError(t, err)
				err = s.Validate(out.Event.Type, doc)
				assert.NoError(t, err, "step %d: the emitted event validates against %s:\n%s", i, out.Event.Type, doc)
			}
			require.NotNil(t, last, "the scenario decided an event")
			assert.Equal(t, tt.wantType, last.Type)
			var data struct {
				Reason   contact.Reason `json:"reason"`
				ReplayOf string         `json:"replayOf"`
			}
			require.NoError(t, json.Unmarshal(last.Data, &data))
			assert.Equal(t, tt.wantReason, data.Reason)
			assert.Equal(t, tt.wantReplay, data.ReplayOf != "", "replayOf is set for a replay only")
		})
	}
}
