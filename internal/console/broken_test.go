package console

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
)

// A failure's page shows, beside each broken rule, the value that broke
// it, whole, for the repair it needs; the command stays masked.
func TestFailurePageShowsTheValuesThatBrokeARule(t *testing.T) {
	f := newFixture(t, Config{NoAuth: true, Addr: "127.0.0.1:8081"})
	long := strings.Repeat("x", 300)
	seed(t, f.js, 1, func(int) (contact.Failed, time.Time) {
		cmd := `{"name":"Meera Iyer","email":"meera@example","mobile":"+919876543210","tagId":"t","metadata":{"crmId":"` + long + `","n":7}}`
		return contact.Failed{CommandID: "broken-1", Provider: "instantpay", Reason: contact.ReasonInvalid,
			Message: "the command breaks 4 rules", Command: json.RawMessage(cmd), Errors: []contact.FieldError{
				{Field: "email", Rule: "email", Message: "email must be a valid email address"},
				{Field: "metadata[crmId]", Rule: "max", Message: "metadata[crmId] is too long"},
				{Field: "metadata[n]", Rule: "type", Message: "metadata[n] must be a string"},
				{Field: "companyName", Rule: "required", Message: "companyName is required"},
			}}, time.Now()
	})
	f.srv.follow.Load(context.Background())
	resp, page := get(t, f.client(t), f.web.URL+"/failure?id=broken-1")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	page = html.UnescapeString(page)
	assert.Contains(t, page, `it holds <code class="broken-value">meera@example</code>`, "the email that broke the rule, unmasked")
	assert.Contains(t, page, `<code class="broken-value">`+strings.Repeat("x", maxBrokenValue)+`…</code>`, "a long value, cut")
	assert.Contains(t, page, `<code class="broken-value">7</code>`, "a value that is no string, as JSON")
	assert.Contains(t, page, "not in the command", "a missing field")
	assert.NotContains(t, page, "+919876543210", "a field that broke no rule stays masked")
	assert.Equal(t, 1, strings.Count(page, "meera@example<"), "the email is whole only beside its rule")
}
