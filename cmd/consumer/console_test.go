package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConsoleRefusesNoAuthOffLoopback(t *testing.T) {
	e := newTestEnv(t)
	var out, errOut bytes.Buffer
	env := map[string]string{"NATS_URL": e.vars["NATS_URL"], "CONSOLE_ADDR": "0.0.0.0:0"}
	err := run(context.Background(), []string{"console"}, func(k string) string { return env[k] }, nil, &out, &errOut)
	require.Error(t, err)
	assert.Equal(t, 2, exitCode(err), "a configuration error")
	assert.Contains(t, err.Error(), "CONSOLE_USER and CONSOLE_PASSWORD")
	assert.Contains(t, err.Error(), "loopback")

	env["CONSOLE_USER"] = "ops"
	err = run(context.Background(), []string{"console"}, func(k string) string { return env[k] }, nil, &out, &errOut)
	require.Error(t, err)
	assert.Equal(t, 2, exitCode(err))
	assert.Contains(t, err.Error(), "go together", "a user without a password is refused")
	assert.NotContains(t, err.Error(), "at least 8 characters", "the missing password is the one error")
}
