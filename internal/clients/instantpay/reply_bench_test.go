package instantpay

import "testing"

// BenchmarkParseCreateReply measures reading a TXN reply to a create.
func BenchmarkParseCreateReply(b *testing.B) {
	body := []byte(`{"statuscode":"TXN","actcode":null,"status":"Contact created successfully","data":{"_id":"65a1b2c3d4e5f6a7b8c9d0e1","userId":189590,"name":"Jane Doe","email":"jane@example.com","mobile":"+919876543210","tagId":["65a1b2c3d4e5f6a7b8c9d0e1"]},"timestamp":"2026-11-21 10:00:00","ipay_uuid":"h0689cabc1234","orderid":"1231121100011ABCD","environment":"LIVE","internalCode":null}`)
	b.ReportAllocs()
	for b.Loop() {
		env, err := parseEnvelope(body)
		if err != nil {
			b.Fatal(err)
		}
		if c, err := parseContact(env.Data); err != nil || c.ID == "" {
			b.Fatal(err)
		}
	}
}
