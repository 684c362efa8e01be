package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// help runs 'consumer <args> -h' and returns what it printed.
func help(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), append(args, "-h"), func(string) string { return "" }, nil, &stdout, &stderr)
	require.True(t, errors.Is(err, flag.ErrHelp), "%v -h is help (exit 0), not %v", args, err)
	assert.Empty(t, stdout.String(), "%v -h prints on stderr", args)
	return stderr.String()
}

// helpSections splits a command's help into its sections by title, each
// with the flag names it lists, in order.
func helpSections(text string) (titles []string, flags map[string][]string) {
	flags = map[string][]string{}
	title := ""
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(line, "  --"):
			name, _, _ := strings.Cut(strings.TrimPrefix(line, "  --"), " ")
			flags[title] = append(flags[title], name)
		case strings.HasSuffix(line, ":") && !strings.HasPrefix(line, " "):
			title = line
			titles = append(titles, title)
		}
	}
	return titles, flags
}

const (
	ownTitle        = "flags:"
	connectionTitle = "connection flags (each overrides its environment variable):"
	serviceTitle    = "service settings (each overrides its environment variable):"
)

func TestHelpShowsOwnFlagsThenConnection(t *testing.T) {
	connection := []string{"nats-url", "nats-creds", "nats-nkey", "nats-tls-ca", "nats-tls-cert", "nats-tls-key", "nats-js-domain", "nats-inbox-prefix"}
	for _, tc := range []struct {
		args    []string
		own     string   // one of its own flags
		service []string // the service settings it takes as flags
	}{
		{[]string{"setup"}, "replicas", []string{"ack-wait", "event-max-age", "audit-max-age", "record-ttl"}},
		{[]string{"publish"}, "wait", []string{"default-provider"}},
		{[]string{"import"}, "batch", []string{"default-provider"}},
		{[]string{"failures"}, "reason", nil},
		{[]string{"failures", "discard"}, "dry-run", nil},
		{[]string{"replay"}, "set", nil},
	} {
		name := strings.Join(tc.args, " ")
		t.Run(name, func(t *testing.T) {
			text := help(t, tc.args...)
			assert.True(t, strings.HasPrefix(text, "usage: consumer "+name), "the help starts with its usage line:\n%s", text)
			titles, flags := helpSections(text)
			want := []string{ownTitle, connectionTitle}
			if len(tc.service) > 0 {
				want = append(want, serviceTitle)
			}
			assert.Equal(t, want, titles, "its own flags first, then the connection's")
			assert.Contains(t, flags[ownTitle], tc.own)
			assert.Equal(t, connection, flags[connectionTitle], "every connection flag, NATS_URL first")
			assert.Equal(t, tc.service, flags[serviceTitle], "no tuning of the service (secrets, retries, circuit, rate limits)")
			for _, tuning := range []string{"instantpay-client-secret", "retry-max-elapsed", "circuit-failures", "pik-rate-limit", "concurrency"} {
				assert.NotContains(t, text, "--"+tuning+" ", "%s is the service's, not %s's", tuning, name)
			}
		})
	}
	for _, cmd := range []string{"run", "dev"} {
		t.Run(cmd, func(t *testing.T) {
			text := help(t, cmd)
			_, flags := helpSections(text)
			assert.Equal(t, connection, flags[connectionTitle])
			for _, s := range allSettings() {
				if !s.Connection() {
					assert.Contains(t, flags[serviceTitle], s.Flag, "%s is the service: it takes every setting", cmd)
				}
			}
		})
	}
	t.Run("bench", func(t *testing.T) {
		titles, flags := helpSections(help(t, "bench"))
		assert.Equal(t, []string{ownTitle}, titles, "bench reads no environment: its own flags only")
		assert.Contains(t, flags[ownTitle], "concurrency", "its own --concurrency, not the setting's")
	})
	t.Run("the settings are still read from the environment", func(t *testing.T) {
		fs := flag.NewFlagSet("consumer replay", flag.ContinueOnError)
		load := toolFlags(fs, func(k string) string { return map[string]string{"CONCURRENCY": "zero"}[k] })
		require.NoError(t, fs.Parse(nil))
		_, err := load()
		assert.ErrorContains(t, err, "CONCURRENCY", "a bad environment is still refused")
		assert.Nil(t, fs.Lookup("concurrency"), "but it is no flag of a tool")
	})
}

func TestUsageErrorIsOneLinePointingToHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // the first line
	}{
		{[]string{"replay", "-x"}, "consumer replay: flag provided but not defined: -x"},
		{[]string{"replay", "--set", "nope"}, `consumer replay: invalid value "nope" for flag -set: --set "nope": want field=value`},
		{[]string{"replay", "--concurrency", "8"}, "consumer replay: flag provided but not defined: -concurrency"},
		{[]string{"setup", "extra"}, `consumer setup: unexpected argument "extra"`},
		{[]string{"failures", "extra"}, `consumer failures: unexpected argument "extra"`},
		{[]string{"failures", "discard", "--json"}, "consumer failures discard: flag provided but not defined: -json"},
		{[]string{"publish", "--name"}, "consumer publish: flag needs an argument: -name"},
		{[]string{"import", "--nope"}, "consumer import: flag provided but not defined: -nope"},
		{[]string{"dev", "extra"}, `consumer dev: unexpected argument "extra"`},
		{[]string{"run", "--no-such-flag"}, "consumer run: flag provided but not defined: -no-such-flag"},
	} {
		name := strings.Join(tc.args, " ")
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), tc.args, func(string) string { return "" }, nil, &stdout, &stderr)
			require.Error(t, err)
			assert.Equal(t, 2, exitCode(err), "a usage error exits 2")
			cmd := "consumer " + tc.args[0]
			if tc.args[0] == "failures" && tc.args[1] == "discard" {
				cmd += " discard"
			}
			assert.Equal(t, tc.want+"\nRun '"+cmd+" -h' for its flags.", err.Error(), "the error, then one line pointing to -h")
			assert.Empty(t, stderr.String(), "no usage printed under it")
			assert.Empty(t, stdout.String())
		})
	}
}

// TestUsageErrorPrintsAsItself checks that main prints a usage error
// without its own "consumer:" prefix: the error names its command.
func TestUsageErrorPrintsAsItself(t *testing.T) {
	err := run(t.Context(), []string{"setup", "extra"}, func(string) string { return "" }, nil, io.Discard, io.Discard)
	var ue *usageError
	require.True(t, errors.As(err, &ue), "a usage error, not %T", err)
	assert.True(t, strings.HasPrefix(err.Error(), "consumer setup: "))
}
