package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
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

func TestConsolePasswordFromFileIsNeverPrinted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "password")
	require.NoError(t, os.WriteFile(path, []byte("s3cret-horse-battery\n"), 0o600))
	env := map[string]string{"CONSOLE_USER": "ops", "CONSOLE_PASSWORD_FILE": path}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	load := settingFlagsWith(fs, func(k string) string { return env[k] }, func(setting) bool { return true }, consoleSettings)
	require.NoError(t, fs.Parse(nil))
	cfg, err := load()
	require.NoError(t, err)
	assert.Equal(t, "s3cret-horse-battery", cfg.ConsolePassword, "read from CONSOLE_PASSWORD_FILE")
	assert.Equal(t, "127.0.0.1:8081", cfg.ConsoleAddr, "the default is loopback")
	assert.NotContains(t, cfg.String(), "s3cret", "the password never reaches a printed configuration")
}
