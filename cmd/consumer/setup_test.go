package main

import (
	"bytes"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSetupReplicasRange(t *testing.T) {
	for _, n := range []string{"0", "-1", "6"} {
		var stderr bytes.Buffer
		err := run(t.Context(), []string{"setup", "--replicas", n}, func(string) string { return "" }, nil, io.Discard, &stderr)
		require.Error(t, err, "--replicas %s", n)
		assert.Equal(t, 2, exitCode(err), "--replicas %s is a usage error", n)
		assert.Contains(t, err.Error(), "--replicas must be from 1 to 5")
	}
	err := run(t.Context(), []string{"setup", "--replicas", "0"}, func(k string) string {
		return map[string]string{"CONCURRENCY": "0"}[k]
	}, nil, io.Discard, io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "CONCURRENCY", "reported with the configuration's errors")
	assert.Contains(t, err.Error(), "--replicas", "all at once")
}
