package rules

import (
	"testing"

	"github.com/contactrelay/contactrelay/contact"
)

// BenchmarkValidate measures the contract's rules on a typical valid
// command.
func BenchmarkValidate(b *testing.B) {
	v := NewValidator()
	cmd := contact.Command{CommandID: "c-1", Provider: "instantpay", Name: "Jane Doe", Email: "jane@example.com",
		Mobile: "+919876543210", TagID: "65a1b2c3d4e5f6a7b8c9d0e1", Metadata: map[string]string{"sentAt": "1234567890"}}
	b.ReportAllocs()
	for b.Loop() {
		if errs := v.Validate(cmd); errs != nil {
			b.Fatal(errs)
		}
	}
}
