package rules

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/contactrelay/contactrelay/contact"
)

func TestProviders(t *testing.T) {
	names := Providers()
	assert.True(t, slices.IsSorted(names), "Providers is sorted: %v", names)
	assert.Equal(t, []string{InstantPay, PIK}, names)
	for _, name := range names {
		check, known := Provider(name)
		assert.True(t, known, name)
		assert.NotNil(t, check, name)
	}
	_, known := Provider("acme")
	assert.False(t, known, "an unknown provider has no rules")
}

func TestCheckInstantPay(t *testing.T) {
	for tag, ok := range map[string]bool{"": true, "65a1b2c3d4e5f6a7b8c9d0e1": true, "65A1B2C3D4E5F6A7B8C9D0E1": true,
		"65a1b2c3d4e5f6a7b8c9d0e": false, "65a1b2c3d4e5f6a7b8c9d0eg": false, "vip": false} {
		errs := CheckInstantPay(contact.Command{TagID: tag})
		if ok {
			assert.Empty(t, errs, "tagId %q", tag)
			continue
		}
		assert.Equal(t, []contact.FieldError{{Field: "tagId", Rule: "hexadecimal24",
			Message: "tagId must be a 24-character hexadecimal id for InstantPay"}}, errs, "tagId %q", tag)
	}
}
