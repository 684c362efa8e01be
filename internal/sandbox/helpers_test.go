package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// Credentials the tests configure.
const (
	testClientID     = "client-id"
	testClientSecret = "client-secret"
	testAppID        = "app-id"
	testAppSecret    = "app-secret"
	testTagID        = "0123456789abcdef01234567"
)

// sandbox is what both sandboxes offer, for tests that run on each.
type sandbox interface {
	http.Handler
	Inject(Fault)
	ClearFaults()
	SetDown(bool)
	Close()
	CreateCalls() int
	Contacts() []Contact
	Duplicates() int
}

// startServer serves sb until the test ends, releasing its hangs first.
func startServer(tb testing.TB, sb sandbox) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(sb)
	tb.Cleanup(srv.Close)
	tb.Cleanup(sb.Close) // runs first: a hanging handler would block srv.Close
	return srv
}

// answer is one HTTP answer, its body decoded.
type answer struct {
	status int
	header http.Header
	body   map[string]any
}

// call sends one request with a JSON body (nil for none) and decodes the
// JSON answer.
func call(tb testing.TB, client *http.Client, method, url string, header map[string]string, body any) (answer, error) {
	tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		data, err := json.Marshal(b)
		require.NoError(tb, err, "request body must encode")
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(tb, err, "request must build")
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return a, err
	}
	if err := json.Unmarshal(data, &a.body); err != nil {
		return a, fmt.Errorf("answer %q is not a JSON object: %w", data, err)
	}
	return a, nil
}

// mustCall is call for requests that must get an answer.
func mustCall(tb testing.TB, client *http.Client, method, url string, header map[string]string, body any) answer {
	tb.Helper()
	a, err := call(tb, client, method, url, header, body)
	require.NoError(tb, err, "%s %s must get a JSON answer", method, url)
	return a
}

// instantPayHeaders are valid credential headers for testClientID.
func instantPayHeaders() map[string]string {
	return map[string]string{
		"X-Ipay-Client-Id":     testClientID,
		"X-Ipay-Client-Secret": testClientSecret,
		"X-Ipay-Auth-Code":     "1",
		"X-Ipay-Endpoint-Ip":   "127.0.0.1",
	}
}

// instantPayContact is a valid create body.
func instantPayContact(name, email, mobile string) map[string]any {
	return map[string]any{
		"name":        name,
		"email":       email,
		"mobile":      mobile,
		"companyName": "Acme",
		"tagDetails":  []map[string]any{{"tagId": testTagID}},
	}
}

// pikToken gets a token from a PIK sandbox served at url.
func pikToken(tb testing.TB, client *http.Client, url string) string {
	tb.Helper()
	a := mustCall(tb, client, http.MethodPost, url+"/auth/token", nil,
		map[string]string{"appId": testAppID, "appSecret": testAppSecret})
	require.Equal(tb, http.StatusOK, a.status, "token request must succeed: %v", a.body)
	data, ok := a.body["data"].(map[string]any)
	require.True(tb, ok, "token answer must have data: %v", a.body)
	token, ok := data["token"].(string)
	require.True(tb, ok, "token answer must have data.token: %v", a.body)
	return token
}

// bearer is the Authorization header for token.
func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

// pikContact is a valid create body with nested fields.
func pikContact(code, email string) map[string]any {
	return map[string]any{
		"contactCode": code,
		"contactType": "INDIVIDUAL",
		"displayName": "Ada Lovelace",
		"firstName":   "Ada",
		"lastName":    "Lovelace",
		"email":       email,
		"phone":       "+919876543210",
		"companyName": "Analytical Engines",
		"countryCode": "IN",
		"paymentContactAddress": map[string]any{
			"city": "Mumbai", "postcode": "400001", "country": "IN",
		},
		"paymentContactAccount": map[string]any{
			"accountNo": "1234567890123456789", "bankName": "Sandbox Bank", "swiftCode": "SBXXINBB",
		},
	}
}

// fixture is a sandbox served for a test, with a way to create a fresh
// valid contact through it, whichever provider it stands in for.
type fixture struct {
	sb      sandbox
	harness *harness
	srv     *httptest.Server
	// create posts a new valid contact with client.
	create func(client *http.Client) (answer, error)
	// list sends the provider's lookup request.
	list func() (answer, error)
	// code is the status code in an answer's body, as a string.
	code func(a answer) string
	// success is code's value for a success.
	success string
}

// providerFixture names a provider and builds its fixture.
type providerFixture struct {
	name string
	new  func(t *testing.T) *fixture
}

// providers lists one fixture builder per provider.
func providers() []providerFixture {
	return []providerFixture{
		{"instantpay", newInstantPayFixture},
		{"pik", newPIKFixture},
	}
}

func newInstantPayFixture(t *testing.T) *fixture {
	t.Helper()
	sb := NewInstantPay(InstantPayConfig{ClientID: testClientID, ClientSecret: testClientSecret})
	srv := startServer(t, sb)
	var n atomic.Int64
	return &fixture{
		sb: sb, harness: &sb.harness, srv: srv,
		create: func(client *http.Client) (answer, error) {
			i := n.Add(1)
			body := instantPayContact("User", fmt.Sprintf("user%d@example.com", i), fmt.Sprintf("98765%05d", i))
			return call(t, client, http.MethodPost, srv.URL+"/contacts/profile", instantPayHeaders(), body)
		},
		list: func() (answer, error) {
			return call(t, srv.Client(), http.MethodGet, srv.URL+"/contacts/profile", instantPayHeaders(), nil)
		},
		code:    func(a answer) string { return fmt.Sprint(a.body["statuscode"]) },
		success: "TXN",
	}
}

func newPIKFixture(t *testing.T) *fixture {
	t.Helper()
	sb := NewPIK(PIKConfig{AppID: testAppID, AppSecret: testAppSecret})
	srv := startServer(t, sb)
	token := pikToken(t, srv.Client(), srv.URL)
	var n atomic.Int64
	return &fixture{
		sb: sb, harness: &sb.harness, srv: srv,
		create: func(client *http.Client) (answer, error) {
			i := n.Add(1)
			body := pikContact(fmt.Sprintf("code-%d", i), fmt.Sprintf("user%d@example.com", i))
			return call(t, client, http.MethodPost, srv.URL+"/api/v1/contact/create", bearer(token), body)
		},
		list: func() (answer, error) {
			return call(t, srv.Client(), http.MethodGet, srv.URL+"/api/v1/contact/list?keyword=code", bearer(token), nil)
		},
		code:    func(a answer) string { return fmt.Sprint(a.body["code"]) },
		success: "200",
	}
}
