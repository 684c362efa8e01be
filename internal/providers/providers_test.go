package providers_test

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/contactrelay/contactrelay/client"
	"github.com/contactrelay/contactrelay/internal/providers"
)

// TestPublisherKnowsEveryProvider: the public package checks commands
// with each provider's own rules; a provider registered here and not
// there would go unchecked before publishing.
func TestPublisherKnowsEveryProvider(t *testing.T) {
	names := providers.Names()
	slices.Sort(names)
	assert.Equal(t, names, client.Providers(), "client.Providers and the registry name the same providers")
}
