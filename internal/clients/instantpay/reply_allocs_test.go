//go:build !race

package instantpay

import "testing"

// TestParseCreateReplyAllocations holds the reading of a create's reply to
// its allocations: the texts it keeps, not a slice of nil errors (17
// before, 9 now).
func TestParseCreateReplyAllocations(t *testing.T) {
	body := []byte(`{"statuscode":"TXN","actcode":null,"status":"Contact created successfully","data":{"_id":"65a1b2c3d4e5f6a7b8c9d0e1","userId":189590,"name":"Jane Doe","email":"jane@example.com","mobile":"+919876543210","tagId":["65a1b2c3d4e5f6a7b8c9d0e1"]},"timestamp":"2026-11-21 10:00:00","ipay_uuid":"h0689cabc1234","orderid":"1231121100011ABCD","environment":"LIVE","internalCode":null}`)
	allocs := testing.AllocsPerRun(100, func() {
		env, err := parseEnvelope(body)
		if err != nil {
			t.Fatal(err)
		}
		if c, err := parseContact(env.Data); err != nil || c.ID == "" {
			t.Fatal(err)
		}
	})
	if allocs > 9 {
		t.Errorf("reading a create's reply took %v allocations, want at most 9", allocs)
	}
}
