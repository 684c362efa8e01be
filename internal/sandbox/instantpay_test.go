package sandbox

import (
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInstantPayCreateAndList(t *testing.T) {
	sb := NewInstantPay(InstantPayConfig{ClientID: testClientID, ClientSecret: testClientSecret})
	srv := startServer(t, sb)
	url := srv.URL + "/contacts/profile"

	contacts := []map[string]any{
		instantPayContact("Ada Lovelace", "ada@example.com", "+919876543210"),
		instantPayContact("Alan Turing", "alan@example.com", "9123456780"),
	}
	ids, uuids, orders := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, c := range contacts {
		t.Run("create "+c["name"].(string), func(t *testing.T) {
			a := mustCall(t, srv.Client(), http.MethodPost, url, instantPayHeaders(), c)
			assert.Equal(t, http.StatusOK, a.status, "a create answers HTTP 200")
			assert.Equal(t, "TXN", a.body["statuscode"], "a create succeeds: %v", a.body)
			assert.Contains(t, a.body["status"], "SANDBOX", "the status says it is a sandbox")
			assert.Equal(t, "SANDBOX", a.body["environment"], "environment is SANDBOX")
			assert.Nil(t, a.body["actcode"], "actcode is null")
			assert.Nil(t, a.body["internalCode"], "internalCode is null")
			_, err := time.Parse(time.DateTime, a.body["timestamp"].(string))
			assert.NoError(t, err, "timestamp is 2006-01-02 15:04:05 style")

			data, ok := a.body["data"].(map[string]any)
			require.True(t, ok, "data is an object: %v", a.body)
			id, _ := data["_id"].(string)
			raw, err := hex.DecodeString(id)
			assert.True(t, err == nil && len(raw) == 12, "_id %q is 24 hexadecimal characters", id)
			assert.NotEmpty(t, data["userId"], "data.userId is set")
			assert.Equal(t, c["name"], data["name"], "data.name echoes the name")
			assert.Equal(t, c["email"], data["email"], "data.email echoes the email")
			assert.Equal(t, c["mobile"], data["mobile"], "data.mobile echoes the mobile")
			assert.Equal(t, []any{testTagID}, data["tagId"], "data.tagId lists the tag ids")

			uuid, _ := a.body["ipay_uuid"].(string)
			order, _ := a.body["orderid"].(string)
			assert.NotEmpty(t, uuid, "ipay_uuid is set")
			assert.NotEmpty(t, order, "orderid is set")
			assert.False(t, ids[id] || uuids[uuid] || orders[order], "identifiers are unique")
			ids[id], uuids[uuid], orders[order] = true, true, true
		})
	}

	t.Run("list", func(t *testing.T) {
		a := mustCall(t, srv.Client(), http.MethodGet, url, instantPayHeaders(), nil)
		assert.Equal(t, "TXN", a.body["statuscode"], "a list succeeds: %v", a.body)
		data, ok := a.body["data"].([]any)
		require.True(t, ok, "data is an array: %v", a.body)
		require.Len(t, data, len(contacts), "every contact is listed")
		for i, d := range data {
			m := d.(map[string]any)
			assert.True(t, ids[m["_id"].(string)], "listed _id is one that was created")
			assert.Equal(t, contacts[i]["email"], m["email"], "contacts are listed oldest first")
			assert.Equal(t, []any{testTagID}, m["tagId"], "tagId is listed")
		}
	})

	assert.Equal(t, 2, sb.CreateCalls(), "two create calls were counted")
	stored := sb.Contacts()
	require.Len(t, stored, 2, "two contacts are stored")
	assert.Equal(t, "ada@example.com", stored[0].Email, "Contacts keeps the email")
	assert.Equal(t, "+919876543210", stored[0].Mobile, "Contacts keeps the mobile")
	assert.Equal(t, "Acme", stored[0].Body["companyName"], "Body holds the request as received")
}

func TestInstantPayCredentials(t *testing.T) {
	cases := []struct {
		name   string
		cfg    InstantPayConfig
		change func(h map[string]string)
		want   string
	}{
		{"valid", InstantPayConfig{ClientID: testClientID, ClientSecret: testClientSecret}, func(map[string]string) {}, "TXN"},
		{"wrong client id", InstantPayConfig{ClientID: testClientID, ClientSecret: testClientSecret},
			func(h map[string]string) { h["X-Ipay-Client-Id"] = "other" }, "IAC"},
		{"wrong client secret", InstantPayConfig{ClientID: testClientID, ClientSecret: testClientSecret},
			func(h map[string]string) { h["X-Ipay-Client-Secret"] = "other" }, "IAC"},
		{"missing auth code", InstantPayConfig{ClientID: testClientID, ClientSecret: testClientSecret},
			func(h map[string]string) { delete(h, "X-Ipay-Auth-Code") }, "IAC"},
		{"empty config accepts any", InstantPayConfig{},
			func(h map[string]string) { h["X-Ipay-Client-Id"], h["X-Ipay-Client-Secret"] = "x", "y" }, "TXN"},
		{"empty config still needs a client id", InstantPayConfig{},
			func(h map[string]string) { delete(h, "X-Ipay-Client-Id") }, "IAC"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sb := NewInstantPay(tc.cfg)
			srv := startServer(t, sb)
			header := instantPayHeaders()
			tc.change(header)
			for _, method := range []string{http.MethodPost, http.MethodGet} {
				var body any
				if method == http.MethodPost {
					body = instantPayContact("Ada", "ada@example.com", "9876543210")
				}
				a := mustCall(t, srv.Client(), method, srv.URL+"/contacts/profile", header, body)
				assert.Equal(t, http.StatusOK, a.status, "%s answers HTTP 200, errors in the body", method)
				assert.Equal(t, tc.want, a.body["statuscode"], "%s statuscode: %v", method, a.body)
				assert.Contains(t, a.body["status"], "SANDBOX", "%s status says SANDBOX", method)
			}
			assert.Equal(t, 1, sb.CreateCalls(), "the create call is counted whatever its outcome")
		})
	}
}

func TestInstantPayValidation(t *testing.T) {
	valid := func() map[string]any { return instantPayContact("Ada", "ada@example.com", "9876543210") }
	with := func(k string, v any) map[string]any { c := valid(); c[k] = v; return c }
	without := func(k string) map[string]any { c := valid(); delete(c, k); return c }
	cases := []struct {
		name string
		body any
		want string // part of the status message
	}{
		{"not JSON", "{", "not a JSON object"},
		{"not an object", "[1]", "not a JSON object"},
		{"no name", without("name"), "name is required"},
		{"blank name", with("name", "  "), "name is required"},
		{"bad email", with("email", "ada.example.com"), "email"},
		{"short mobile", with("mobile", "12345"), "mobile"},
		{"mobile with letters", with("mobile", "98765abc10"), "mobile"},
		{"mobile as a number", with("mobile", 9876543210), "mobile has the wrong JSON type"},
		{"no tags", without("tagDetails"), "tagDetails"},
		{"bad tag id", with("tagDetails", []map[string]any{{"tagId": "xyz"}}), "tagDetails[0].tagId"},
	}
	sb := NewInstantPay(InstantPayConfig{})
	srv := startServer(t, sb)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := mustCall(t, srv.Client(), http.MethodPost, srv.URL+"/contacts/profile", instantPayHeaders(), tc.body)
			assert.Equal(t, http.StatusOK, a.status, "a refusal answers HTTP 200")
			assert.Equal(t, "RPI", a.body["statuscode"], "an invalid body is RPI: %v", a.body)
			assert.Contains(t, a.body["status"], tc.want, "the status names the problem")
			assert.Contains(t, a.body["status"], "SANDBOX", "the status says SANDBOX")
		})
	}
	assert.Equal(t, len(cases), sb.CreateCalls(), "refused creates are counted")
	assert.Empty(t, sb.Contacts(), "refused creates store nothing")
}

func TestInstantPayDuplicates(t *testing.T) {
	sb := NewInstantPay(InstantPayConfig{})
	srv := startServer(t, sb)
	steps := []struct {
		name, email, mobile string
		wantDuplicates      int
	}{
		{"first", "ada@example.com", "+919876543210", 0},
		{"same again", "ada@example.com", "+919876543210", 1},
		{"email case and no plus", "ADA@Example.com", "919876543210", 2},
		{"other mobile", "ada@example.com", "+919876543211", 2},
		{"other email", "ada2@example.com", "+919876543210", 2},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			a := mustCall(t, srv.Client(), http.MethodPost, srv.URL+"/contacts/profile", instantPayHeaders(),
				instantPayContact("Ada", s.email, s.mobile))
			assert.Equal(t, "TXN", a.body["statuscode"], "duplicates are not refused: %v", a.body)
			assert.Equal(t, s.wantDuplicates, sb.Duplicates(), "duplicates counted by email and mobile digits")
		})
	}
	assert.Len(t, sb.Contacts(), len(steps), "every create is stored")
}
