package pik_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/contactrelay/contactrelay/internal/clients/provider"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/clients/pik"
	"github.com/contactrelay/contactrelay/internal/sandbox"
)

func TestLookupRequest(t *testing.T) {
	s := newStandIn(t, &standIn{})
	cmd := testCommand()
	cmd.PIK = map[string]json.RawMessage{"contactCode": json.RawMessage(`"A&B 1/2"`)}
	_, found, err := newClient(t, s.URL, nil).Lookup(context.Background(), cmd)
	require.NoError(t, err, "an empty list is an answer")
	assert.False(t, found, "nothing listed")

	lists := s.requests("/api/v1/contact/list")
	require.Len(t, lists, 1, "one list request")
	req := lists[0]
	assert.Equal(t, http.MethodGet, req.Method, "method")
	assert.Equal(t, "Bearer tok-1", req.Header.Get("Authorization"), "bearer token")
	q, err := url.ParseQuery(req.RawQuery)
	require.NoError(t, err, "the query should parse")
	assert.Equal(t, url.Values{"pageNum": {"1"}, "pageSize": {"10"}, "keyword": {"A&B 1/2"}}, q, "query parameters, keyword escaped")
}

func TestLookupShapes(t *testing.T) {
	code := pik.ContactCode(testCommand())
	ours := `{"id":77,"contactCode":"` + code + `","contactId":"c-77","displayName":"Ada Lovelace"}`
	prefix := `{"id":78,"contactCode":"` + code + `X","displayName":"Someone else"}`
	want := map[string]any{"contactCode": code, "id": json.Number("77"), "contactId": "c-77", "reconciled": true}
	tests := []struct {
		name      string
		data      string
		wantFound bool
	}{
		{name: "array", data: `[` + prefix + `,` + ours + `]`, wantFound: true},
		{name: "object with list", data: `{"total":2,"list":[` + prefix + `,` + ours + `]}`, wantFound: true},
		{name: "object with records", data: `{"total":1,"records":[` + ours + `]}`, wantFound: true},
		{name: "object with rows", data: `{"rows":[` + ours + `]}`, wantFound: true},
		{name: "object with items", data: `{"items":[` + ours + `]}`, wantFound: true},
		{name: "only a contact whose code merely starts with ours", data: `[` + prefix + `]`},
		{name: "empty array", data: `[]`},
		{name: "empty list in an object", data: `{"total":0,"list":[]}`},
		{name: "null data", data: `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStandIn(t, &standIn{List: sandbox.Reply(200, `{"code":200,"message":"success","data":`+tt.data+`}`)})
			contact, found, err := newClient(t, s.URL, nil).Lookup(context.Background(), testCommand())
			require.NoError(t, err, "the list is an answer")
			assert.Equal(t, tt.wantFound, found, "found")
			if tt.wantFound {
				assert.Equal(t, code, contact.ID, "the contact id is the contactCode")
				assert.Equal(t, want, contact.Upstream, "upstream of a reconciled contact")
			}
		})
	}
}

func TestLookupFailures(t *testing.T) {
	tests := []struct {
		name      string
		list      http.HandlerFunc
		wantClass provider.Class
		wantCode  string
	}{
		{name: "HTTP 500", list: sandbox.Reply(500, ``), wantClass: provider.Transient},
		{name: "HTTP 404", list: sandbox.Reply(404, `{"code":404,"message":"no such path"}`), wantClass: provider.Permanent, wantCode: "404"},
		{name: "body code 503", list: sandbox.Reply(200, `{"code":503,"message":"busy"}`), wantClass: provider.Transient, wantCode: "503"},
		{name: "unparseable 2xx is transient", list: sandbox.Reply(200, `nope`), wantClass: provider.Transient},
		{name: "unknown data shape is permanent: reading again would not help", list: sandbox.Reply(200, `{"code":200,"data":{"total":1}}`), wantClass: provider.Permanent, wantCode: "200"},
		{name: "timeout is transient", list: sandbox.Hang, wantClass: provider.Transient, wantCode: "timeout"},
		{name: "connection lost is transient", list: sandbox.HangUp, wantClass: provider.Transient, wantCode: "connection"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStandIn(t, &standIn{List: tt.list})
			_, found, err := newClient(t, s.URL, nil).Lookup(context.Background(), testCommand())
			pe := asProviderError(t, err)
			assert.False(t, found, "a failed lookup finds nothing")
			assert.Equal(t, tt.wantClass, pe.Class, "class of %v", err)
			assert.Equal(t, tt.wantCode, pe.Code, "code of %v", err)
			assert.Equal(t, "lookup", pe.Op, "op")
			assert.ErrorIs(t, err, provider.ErrIncompleteLookup, "a failed lookup never proves absence")
		})
	}
}
