package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTopLevelCommands(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		var out bytes.Buffer
		require.NoError(t, run(t.Context(), args, func(string) string { return "" }, nil, &out, io.Discard), "%v", args)
		assert.Contains(t, out.String(), "consumer ", "%v prints the version", args)
	}
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		var out bytes.Buffer
		require.NoError(t, run(t.Context(), args, func(string) string { return "" }, nil, &out, io.Discard), "%v", args)
		assert.Contains(t, out.String(), "usage: consumer", "%v prints the usage", args)
	}

	err := run(t.Context(), []string{"frobnicate"}, func(string) string { return "" }, nil, io.Discard, io.Discard)
	assert.Equal(t, 2, exitCode(err), "an unknown command is a usage error")

	err = run(t.Context(), []string{"publish", "-h"}, func(string) string { return "" }, nil, io.Discard, io.Discard)
	assert.True(t, errors.Is(err, flag.ErrHelp), "a command's -h is help, not a failure")

	var stderr bytes.Buffer
	err = run(t.Context(), []string{"run", "--no-such-flag"}, func(string) string { return "" }, nil, io.Discard, &stderr)
	assert.Equal(t, 2, exitCode(err), "a bad flag is a usage error")
	assert.Contains(t, err.Error(), "no-such-flag", "and says which")
	assert.Empty(t, stderr.String(), "said once, by the error, not by the flag package")
}
