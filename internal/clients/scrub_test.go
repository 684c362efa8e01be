package clients_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/clients"
	"github.com/contactrelay/contactrelay/internal/clients/provider"
	"github.com/contactrelay/contactrelay/internal/redact"
)

func TestScrubError(t *testing.T) {
	const secret = "the-app-secret-1"
	secrets := redact.NewSecrets(secret)
	cause := fmt.Errorf("answer %q: %w", secret, context.DeadlineExceeded)

	pe := &provider.Error{Provider: "p", Op: "create", Class: provider.Transient,
		Code: secret, Message: "said " + secret, RequestID: "r-" + secret, Err: cause}
	err := clients.ScrubError(pe, secrets)
	require.Same(t, pe, err, "a provider error is scrubbed in place")
	assert.Equal(t, redact.Marker, pe.Code)
	assert.Equal(t, "said "+redact.Marker, pe.Message)
	assert.Equal(t, "r-"+redact.Marker, pe.RequestID)
	assert.NotContains(t, pe.Err.Error(), secret, "the wrapped error's text is scrubbed")
	assert.ErrorIs(t, err, context.DeadlineExceeded, "errors.Is still sees the cause")

	plain := clients.ScrubError(cause, secrets)
	assert.NotContains(t, plain.Error(), secret, "any error's text is scrubbed")
	assert.ErrorIs(t, plain, context.DeadlineExceeded)

	clean := errors.New("nothing secret")
	assert.Same(t, clean, clients.ScrubError(clean, secrets), "an error without a secret is returned as it is")
	assert.Same(t, cause, clients.ScrubError(cause, nil), "nil secrets scrub nothing")
	assert.NoError(t, clients.ScrubError(nil, secrets))
}
