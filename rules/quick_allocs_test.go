//go:build !race

package rules

import (
	"testing"

	"github.com/contactrelay/contactrelay/contact"
)

// TestValidateAllocations: a typical valid command is validated without
// allocating (the quick check; the validator's walk took about 14
// allocations, its e-mail rule's parse and regular expression among them).
func TestValidateAllocations(t *testing.T) {
	v := NewValidator()
	cmd := contact.Command{CommandID: "c-1", Provider: "instantpay", Name: "Jane Doe", Email: "jane@example.com",
		Mobile: "+919876543210", TagID: "65a1b2c3d4e5f6a7b8c9d0e1", Metadata: map[string]string{"sentAt": "1234567890"}}
	allocs := testing.AllocsPerRun(100, func() {
		if errs := v.Validate(cmd); errs != nil {
			t.Fatal(errs)
		}
	})
	if allocs > 0 {
		t.Errorf("validating a valid command took %v allocations, want none", allocs)
	}
}
