package sandbox

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/fakeclock"
)

func TestPIKToken(t *testing.T) {
	clock := fakeclock.New(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	sb := NewPIK(PIKConfig{AppID: testAppID, AppSecret: testAppSecret, TokenTTL: 90 * time.Second, Now: clock.Now})
	srv := startServer(t, sb)
	cases := []struct {
		name       string
		body       any
		wantStatus int
		wantMsg    string
	}{
		{"valid", map[string]string{"appId": testAppID, "appSecret": testAppSecret}, http.StatusOK, "success"},
		{"wrong appId", map[string]string{"appId": "other", "appSecret": testAppSecret}, http.StatusUnauthorized, "invalid appId or appSecret"},
		{"wrong appSecret", map[string]string{"appId": testAppID, "appSecret": "other"}, http.StatusUnauthorized, "invalid appId or appSecret"},
		{"not JSON", "{", http.StatusBadRequest, "SANDBOX"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := mustCall(t, srv.Client(), http.MethodPost, srv.URL+"/auth/token", nil, tc.body)
			assert.Equal(t, tc.wantStatus, a.status, "HTTP status: %v", a.body)
			assert.EqualValues(t, tc.wantStatus, a.body["code"], "body code matches the HTTP status")
			assert.Contains(t, a.body["message"], tc.wantMsg, "message")
			if tc.wantStatus != http.StatusOK {
				return
			}
			data := a.body["data"].(map[string]any)
			assert.EqualValues(t, 90, data["expiresIn"], "expiresIn is the TTL in seconds")
			parts := strings.Split(data["token"].(string), ".")
			require.Len(t, parts, 3, "the token is a JWT")
			var header, claims map[string]any
			decodeSegment(t, parts[0], &header)
			decodeSegment(t, parts[1], &claims)
			assert.Equal(t, map[string]any{"alg": "HS256", "typ": "JWT"}, header, "JWT header")
			assert.Equal(t, testAppID, claims["sub"], "sub is the appId")
			assert.EqualValues(t, clock.Now().Unix(), claims["iat"], "iat is now")
			assert.EqualValues(t, clock.Now().Unix()+90, claims["exp"], "exp is now plus the TTL")
		})
	}
	assert.Equal(t, len(cases), sb.TokenRequests(), "every token request is counted")
}

func decodeSegment(t *testing.T, seg string, v any) {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	require.NoError(t, err, "JWT segments are base64url")
	require.NoError(t, json.Unmarshal(raw, v), "JWT segments are JSON")
}

func TestPIKAuthorization(t *testing.T) {
	clock := fakeclock.New(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	sb := NewPIK(PIKConfig{TokenTTL: time.Minute, Now: clock.Now})
	srv := startServer(t, sb)
	other := NewPIK(PIKConfig{Now: clock.Now})
	otherSrv := startServer(t, other)
	token := pikToken(t, srv.Client(), srv.URL)
	forged := pikToken(t, otherSrv.Client(), otherSrv.URL)

	cases := []struct {
		name    string
		header  map[string]string
		advance time.Duration
		wantMsg string // empty for success
	}{
		{"valid", bearer(token), 0, ""},
		{"no header", nil, 0, "invalid token"},
		{"not bearer", map[string]string{"Authorization": "Basic " + token}, 0, "invalid token"},
		{"garbage", bearer("a.b.c"), 0, "invalid token"},
		{"signed by another sandbox", bearer(forged), 0, "invalid token"},
		{"still valid just before exp", bearer(token), 59 * time.Second, ""},
		{"expired at exp", bearer(token), time.Second, "token expired"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock.Advance(tc.advance)
			for _, ep := range []struct{ method, path string }{
				{http.MethodGet, "/api/v1/contact/list"},
				{http.MethodPost, "/api/v1/contact/create"},
			} {
				a := mustCall(t, srv.Client(), ep.method, srv.URL+ep.path, tc.header, pikContact("code-"+tc.name, "a@example.com"))
				if tc.wantMsg == "" {
					assert.Equal(t, http.StatusOK, a.status, "%s accepts the token: %v", ep.path, a.body)
					continue
				}
				assert.Equal(t, http.StatusUnauthorized, a.status, "%s refuses with 401", ep.path)
				assert.EqualValues(t, 401, a.body["code"], "%s body code is 401", ep.path)
				assert.Equal(t, tc.wantMsg, a.body["message"], "%s message", ep.path)
			}
		})
	}
	t.Run("a fresh token works after expiry", func(t *testing.T) {
		fresh := pikToken(t, srv.Client(), srv.URL)
		a := mustCall(t, srv.Client(), http.MethodGet, srv.URL+"/api/v1/contact/list", bearer(fresh), nil)
		assert.Equal(t, http.StatusOK, a.status, "the refreshed token is accepted")
	})
}

func TestPIKCreateAndList(t *testing.T) {
	sb := NewPIK(PIKConfig{AppID: testAppID, AppSecret: testAppSecret})
	srv := startServer(t, sb)
	token := pikToken(t, srv.Client(), srv.URL)
	create := srv.URL + "/api/v1/contact/create"

	ids := map[string]bool{}
	for _, c := range []map[string]any{
		pikContact("cr-alpha", "alpha@example.com"),
		pikContact("cr-beta", "beta@example.com"),
		pikContact("other", "gamma@example.com"),
	} {
		t.Run("create "+c["contactCode"].(string), func(t *testing.T) {
			a := mustCall(t, srv.Client(), http.MethodPost, create, bearer(token), c)
			assert.Equal(t, http.StatusOK, a.status, "HTTP 200")
			assert.EqualValues(t, 200, a.body["code"], "code 200: %v", a.body)
			assert.Equal(t, "success", a.body["message"], "message success")
			assert.Equal(t, "SANDBOX", a.body["environment"], "environment is SANDBOX")
			data := a.body["data"].(map[string]any)
			id, _ := data["id"].(string)
			assert.NotEmpty(t, id, "data.id is set")
			assert.False(t, ids[id], "data.id is unique")
			ids[id] = true
			assert.Equal(t, c["contactCode"], data["contactCode"], "data.contactCode echoes the code")
			assert.NotEmpty(t, data["createTime"], "data.createTime is set")
			assert.Equal(t, "1234567890123456789",
				data["paymentContactAccount"].(map[string]any)["accountNo"], "nested fields come back")
		})
	}

	stored := sb.Contacts()
	require.Len(t, stored, 3, "three contacts are stored")
	assert.Equal(t, "cr-alpha", stored[0].ContactCode, "ContactCode is kept")
	assert.Equal(t, "+919876543210", stored[0].Mobile, "the phone is the Mobile")
	assert.Equal(t, "Mumbai", stored[0].Body["paymentContactAddress"].(map[string]any)["city"],
		"Body keeps nested fields as received")
	assert.NotContains(t, stored[0].Body, "id", "Body is the request, without the sandbox's id")

	cases := []struct {
		name      string
		query     string
		wantCodes []any
		wantTotal int
	}{
		{"by code", "?pageNum=1&pageSize=10&keyword=cr-alpha", []any{"cr-alpha"}, 1},
		{"by prefix", "?keyword=cr-", []any{"cr-alpha", "cr-beta"}, 2},
		{"by email, ignoring case", "?keyword=GAMMA@", []any{"other"}, 1},
		{"all", "", []any{"cr-alpha", "cr-beta", "other"}, 3},
		{"second page", "?pageNum=2&pageSize=2", []any{"other"}, 3},
		{"none", "?keyword=nobody", []any{}, 0},
	}
	for _, tc := range cases {
		t.Run("list "+tc.name, func(t *testing.T) {
			a := mustCall(t, srv.Client(), http.MethodGet, srv.URL+"/api/v1/contact/list"+tc.query, bearer(token), nil)
			assert.EqualValues(t, 200, a.body["code"], "code 200: %v", a.body)
			data := a.body["data"].(map[string]any)
			codes := []any{}
			for _, c := range data["list"].([]any) {
				codes = append(codes, c.(map[string]any)["contactCode"])
			}
			assert.Equal(t, tc.wantCodes, codes, "listed contact codes")
			assert.EqualValues(t, tc.wantTotal, data["total"], "total counts every match")
		})
	}
	t.Run("list bad page", func(t *testing.T) {
		a := mustCall(t, srv.Client(), http.MethodGet, srv.URL+"/api/v1/contact/list?pageNum=x", bearer(token), nil)
		assert.EqualValues(t, 400, a.body["code"], "a bad pageNum is refused")
	})
}

func TestPIKCreateRefusals(t *testing.T) {
	sb := NewPIK(PIKConfig{})
	srv := startServer(t, sb)
	token := pikToken(t, srv.Client(), srv.URL)
	without := func(k string) map[string]any { c := pikContact("r-"+k, "r@example.com"); delete(c, k); return c }
	with := func(k string, v any) map[string]any { c := pikContact("w-"+k, "w@example.com"); c[k] = v; return c }

	cases := []struct {
		name     string
		body     any
		wantCode int
		wantMsg  string
	}{
		{"first", pikContact("dup", "dup@example.com"), 200, "success"},
		{"duplicate contactCode", pikContact("dup", "other@example.com"), 409, "contactCode already exists"},
		{"not JSON", "{", 400, "not a JSON object"},
		{"no contactCode", without("contactCode"), 400, "contactCode is required"},
		{"no displayName", without("displayName"), 400, "displayName is required"},
		{"no email", without("email"), 400, "email is required"},
		{"no phone", without("phone"), 400, "phone is required"},
		{"phone as a number", with("phone", 919876543210), 400, "phone must be a string"},
		{"bad email", with("email", "nope"), 400, "email is not a valid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := mustCall(t, srv.Client(), http.MethodPost, srv.URL+"/api/v1/contact/create", bearer(token), tc.body)
			assert.Equal(t, http.StatusOK, a.status, "PIK answers in the body with HTTP 200")
			assert.EqualValues(t, tc.wantCode, a.body["code"], "body code: %v", a.body)
			assert.Contains(t, a.body["message"], tc.wantMsg, "message names the problem")
		})
	}
	assert.Equal(t, len(cases), sb.CreateCalls(), "every create call is counted")
	assert.Len(t, sb.Contacts(), 1, "only the first contact is stored")
	assert.Equal(t, 0, sb.Duplicates(), "PIK refuses duplicate contact codes")
}
