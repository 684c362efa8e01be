package config_test

import (
	"bytes"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/config"
	"github.com/contactrelay/contactrelay/internal/exit"
	"github.com/contactrelay/contactrelay/internal/providers"
)

func loadConfig(t *testing.T, env map[string]string, args ...string) (config.Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	load := config.Flags(fs, func(k string) string { return env[k] }, providers.Settings(), func(config.Setting) bool { return true }, nil)
	require.NoError(t, fs.Parse(args))
	return load()
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := loadConfig(t, nil)
	require.NoError(t, err)
	assert.Equal(t, "nats://127.0.0.1:4222", cfg.NATSURL)
	assert.Equal(t, 64, cfg.Concurrency)
	assert.Equal(t, 10, cfg.MaxDeliver)
	assert.Equal(t, 30*time.Second, cfg.AckWait)
	assert.Equal(t, 500*time.Millisecond, cfg.RetryInitial)
	assert.Equal(t, 30*time.Second, cfg.RetryMax)
	assert.Equal(t, 2*time.Minute, cfg.RetryMaxElapsed)
	assert.Equal(t, 10*time.Second, cfg.ProviderTimeout)
	assert.Equal(t, "https://api.instantpay.in", cfg.Providers["instantpay"]["INSTANTPAY_BASE_URL"])
	assert.Equal(t, "1", cfg.Providers["instantpay"]["INSTANTPAY_AUTH_CODE"])
	assert.Equal(t, ":8080", cfg.HTTPAddr)
	assert.Equal(t, "json", cfg.LogFormat)
	enabled, disabled, err := providers.Build(cfg, nil, nil)
	require.NoError(t, err)
	assert.Empty(t, enabled, "no credentials, no provider")
	assert.Contains(t, disabled["instantpay"], "INSTANTPAY_CLIENT_ID", "the reason names what is missing")
	assert.Contains(t, disabled["pik"], "PIK_BASE_URL")
}

func TestConfigFlagsOverrideEnvironment(t *testing.T) {
	cfg, err := loadConfig(t, map[string]string{"CONCURRENCY": "8"}, "--concurrency", "16")
	require.NoError(t, err)
	assert.Equal(t, 16, cfg.Concurrency)
}

func TestConfigReportsEveryBadValue(t *testing.T) {
	_, err := loadConfig(t, map[string]string{
		"CONCURRENCY":         "zero",
		"ACK_WAIT":            "30",
		"DEFAULT_PROVIDER":    "paypal",
		"LOG_FORMAT":          "xml",
		"PIK_BASE_URL":        "ftp://pik",
		"PIK_RATE_LIMIT":      "-1",
		"INSTANTPAY_BASE_URL": "::",
	})
	require.Error(t, err)
	for _, name := range []string{"CONCURRENCY", "ACK_WAIT", "DEFAULT_PROVIDER", "LOG_FORMAT", "PIK_BASE_URL", "PIK_RATE_LIMIT", "INSTANTPAY_BASE_URL"} {
		assert.Contains(t, err.Error(), name, "every bad value is reported at once")
	}
}

func TestConfigSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(path, []byte("s3cret\n"), 0o600))
	cfg, err := loadConfig(t, map[string]string{
		"INSTANTPAY_CLIENT_ID":          "id",
		"INSTANTPAY_CLIENT_SECRET_FILE": path,
	})
	require.NoError(t, err)
	assert.Equal(t, "s3cret", cfg.Providers["instantpay"]["INSTANTPAY_CLIENT_SECRET"], "X_FILE is read and trimmed")
	enabled, _, err := providers.Build(cfg, nil, nil)
	require.NoError(t, err)
	assert.Contains(t, enabled, "instantpay")

	_, err = loadConfig(t, map[string]string{"PIK_APP_SECRET_FILE": filepath.Join(dir, "missing")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "PIK_APP_SECRET_FILE")

	// NATS_CREDS, NATS_NKEY and NATS_TLS_KEY already name files: their
	// _FILE form is the same path, and what the file holds is never read
	// into the configuration (nor into an error).
	seed := filepath.Join(dir, "seed.nk")
	require.NoError(t, os.WriteFile(seed, []byte("SUAFAKESEEDSECRET\n"), 0o600))
	cfg, err = loadConfig(t, map[string]string{"NATS_NKEY_FILE": seed, "NATS_CREDS_FILE": seed, "NATS_TLS_KEY_FILE": seed, "NATS_TLS_CERT": seed})
	require.NoError(t, err)
	assert.Equal(t, seed, cfg.NATSNKey)
	assert.Equal(t, seed, cfg.NATSCreds)
	assert.Equal(t, seed, cfg.NATSTLSKey)
	assert.NotContains(t, fmt.Sprintf("%v %+v", cfg, cfg), "SUAFAKESEEDSECRET")
}

func TestConfigNeverPrintsSecrets(t *testing.T) {
	cfg, err := loadConfig(t, map[string]string{
		"INSTANTPAY_CLIENT_ID": "ipay-id-1", "INSTANTPAY_CLIENT_SECRET": "ipay-secret-1",
		"PIK_BASE_URL": "https://pik.example", "PIK_APP_ID": "pik-id-1", "PIK_APP_SECRET": "pik-secret-1",
	})
	require.NoError(t, err)
	var logs bytes.Buffer
	config.NewLogger(&logs, slog.LevelInfo, "json").Info("config", "config", cfg)
	for _, out := range []string{fmt.Sprint(cfg), fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg), logs.String()} {
		for _, secret := range []string{"ipay-secret-1", "pik-secret-1", "ipay-id-1", "pik-id-1"} {
			assert.NotContains(t, out, secret)
		}
		assert.Contains(t, out, "https://pik.example", "the rest is shown")
	}
}

func TestConfigHTTPAddrOff(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"default", nil, nil, ":8080"},
		{"off in the environment", map[string]string{"HTTP_ADDR": "off"}, nil, ""},
		{"none in the environment", map[string]string{"HTTP_ADDR": "none"}, nil, ""},
		{"an empty flag", nil, []string{"--http-addr", ""}, ""},
		{"an address", map[string]string{"HTTP_ADDR": "127.0.0.1:9000"}, nil, "127.0.0.1:9000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfig(t, tc.env, tc.args...)
			require.NoError(t, err)
			assert.Equal(t, tc.want, cfg.HTTPAddr)
		})
	}
}

func TestConfigChecksSyntaxAndRangesAtOnce(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "client.pem")
	require.NoError(t, os.WriteFile(cert, []byte("not read here"), 0o600))
	bad := map[string]string{
		"NATS_URL":                   "nats://jane:pa55word@127.0.0.1:notaport,nats://ok:4222",
		"HTTP_ADDR":                  "nope",
		"CONCURRENCY":                "100000",
		"MAX_DELIVER":                "0",
		"ACK_WAIT":                   "1ms",
		"RETRY_MAX_INTERVAL":         "-1s",
		"RETRY_MAX_ELAPSED":          "forever",
		"PROVIDER_TIMEOUT":           "0s",
		"SHUTDOWN_GRACE":             "2h",
		"CIRCUIT_FAILURES":           "1001",
		"INSTANTPAY_RATE_LIMIT":      "NaN",
		"PIK_MAX_CONCURRENCY":        "-1",
		"EVENT_SOURCE":               " ",
		"NATS_TLS_CERT":              cert,
		"NATS_CREDS":                 filepath.Join(dir, "missing.creds"),
		"INSTANTPAY_MAX_CONCURRENCY": "5000",
		"NATS_INBOX_PREFIX":          "_INBOX.>",
	}
	_, err := loadConfig(t, bad)
	require.Error(t, err)
	assert.Equal(t, 2, exit.Code(err), "a configuration error exits 2")
	msg := err.Error()
	lines := strings.Split(msg, "\n")
	for env := range bad {
		n := 0
		for _, l := range lines {
			if strings.HasPrefix(l, env+" ") || strings.HasPrefix(l, env+":") {
				n++
			}
		}
		assert.Equal(t, 1, n, "%s is reported once, in:\n%s", env, msg)
	}
	assert.Len(t, lines, 1+len(bad), "one line each, after the heading:\n%s", msg)
	assert.Contains(t, msg, "NATS_TLS_CERT is set without NATS_TLS_KEY")
	assert.Contains(t, msg, "notaport")
	assert.NotContains(t, msg, "pa55word", "the URL is shown redacted")
	assert.NotContains(t, msg, "0s)", "no error derived from a value already reported")
	assert.NotContains(t, msg, "RETRY_INITIAL_INTERVAL", "its own value is good")

	good := map[string]string{
		"NATS_URL":    "nats://a:4222, tls://b ,c:4223,ws://d:80",
		"HTTP_ADDR":   "127.0.0.1:0",
		"CONCURRENCY": "4096", "MAX_DELIVER": "100", "ACK_WAIT": "1s",
		"RETRY_INITIAL_INTERVAL": "1ms", "RETRY_MAX_INTERVAL": "1h", "RETRY_MAX_ELAPSED": "24h",
		"PROVIDER_TIMEOUT": "10m", "SHUTDOWN_GRACE": "1h", "CIRCUIT_FAILURES": "1000",
		"INSTANTPAY_RATE_LIMIT": "0.5", "PIK_MAX_CONCURRENCY": "4096",
		"NATS_INBOX_PREFIX": "_INBOX_service.pod-1",
	}
	_, err = loadConfig(t, good)
	assert.NoError(t, err, "the ends of each range are accepted")

	for env, v := range map[string]string{
		"CONCURRENCY": "4097", "MAX_DELIVER": "101", "ACK_WAIT": "999ms", "RETRY_MAX_ELAPSED": "25h",
		"PROVIDER_TIMEOUT": "11m", "NATS_URL": "http://a:4222", "HTTP_ADDR": ":99999",
		"NATS_INBOX_PREFIX": "_INBOX_service.",
	} {
		_, err := loadConfig(t, map[string]string{env: v})
		if assert.Error(t, err, "%s=%s is out of range", env, v) {
			assert.Contains(t, err.Error(), env)
		}
	}
}

func TestConsolePasswordFromFileIsNeverPrinted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "password")
	require.NoError(t, os.WriteFile(path, []byte("s3cret-horse-battery\n"), 0o600))
	env := map[string]string{"CONSOLE_USER": "ops", "CONSOLE_PASSWORD_FILE": path}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	load := config.Flags(fs, func(k string) string { return env[k] }, providers.Settings(), func(config.Setting) bool { return true }, config.ConsoleSettings())
	require.NoError(t, fs.Parse(nil))
	cfg, err := load()
	require.NoError(t, err)
	assert.Equal(t, "s3cret-horse-battery", cfg.ConsolePassword, "read from CONSOLE_PASSWORD_FILE")
	assert.Equal(t, "127.0.0.1:8081", cfg.ConsoleAddr, "the default is loopback")
	assert.NotContains(t, cfg.String(), "s3cret", "the password never reaches a printed configuration")
}

func TestConsoleAccountSettings(t *testing.T) {
	load := func(env map[string]string) (config.Config, error) {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		load := config.Flags(fs, func(k string) string { return env[k] }, providers.Settings(), func(config.Setting) bool { return true }, config.ConsoleSettings())
		require.NoError(t, fs.Parse(nil))
		return load()
	}
	cfg, err := load(map[string]string{
		"CONSOLE_USERS_FILE": "/etc/console/users", "CONSOLE_OPERATORS": "ana, bob,", "CONSOLE_READ_ONLY": "true",
		"CONSOLE_PROXY_USER_HEADER": "X-Forwarded-User", "CONSOLE_PROXY_GROUPS_HEADER": "X-Forwarded-Groups",
		"CONSOLE_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7", "CONSOLE_OPERATOR_GROUPS": "payments-ops",
	})
	require.NoError(t, err)
	a := cfg.ConsoleAuth
	assert.Equal(t, "/etc/console/users", a.UsersFile)
	assert.Equal(t, []string{"ana", "bob"}, a.Operators)
	assert.True(t, a.ReadOnly)
	assert.Equal(t, "X-Forwarded-User", a.ProxyUserHeader)
	assert.Equal(t, "X-Forwarded-Groups", a.ProxyGroupsHeader)
	assert.Equal(t, "[10.0.0.0/8 192.168.1.7/32]", fmt.Sprint(a.TrustedProxies), "a bare address is its own /32")
	assert.Equal(t, []string{"payments-ops"}, a.OperatorGroups)

	cfg, err = load(nil)
	require.NoError(t, err)
	assert.False(t, cfg.ConsoleAuth.ReadOnly, "read-only is off by default")

	_, err = load(map[string]string{"CONSOLE_READ_ONLY": "yes please", "CONSOLE_TRUSTED_PROXIES": "10.0.0.0/33", "CONSOLE_PROXY_USER_HEADER": "X-User"})
	require.Error(t, err)
	for _, want := range []string{"CONSOLE_READ_ONLY must be true or false", `CONSOLE_TRUSTED_PROXIES must be a comma list of CIDRs (10.0.0.0/8) or addresses, not "10.0.0.0/33"`, "CONSOLE_PROXY_USER_HEADER needs CONSOLE_TRUSTED_PROXIES"} {
		assert.Contains(t, err.Error(), want, "every bad value at once")
	}
}

func TestConsoleSessionSettings(t *testing.T) {
	load := func(env map[string]string) (config.Config, error) {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		load := config.Flags(fs, func(k string) string { return env[k] }, providers.Settings(), func(config.Setting) bool { return true }, config.ConsoleSettings())
		require.NoError(t, fs.Parse(nil))
		return load()
	}
	cfg, err := load(nil)
	require.NoError(t, err)
	assert.Equal(t, time.Hour, cfg.ConsoleAuth.SessionIdle, "idle default")
	assert.Equal(t, 12*time.Hour, cfg.ConsoleAuth.SessionMax, "absolute default")
	cfg, err = load(map[string]string{"CONSOLE_SESSION_KEY_FILE": "/run/secrets/key", "CONSOLE_SESSION_IDLE": "20m", "CONSOLE_SESSION_MAX": "8h"})
	require.NoError(t, err)
	assert.Equal(t, "/run/secrets/key", cfg.ConsoleAuth.SessionKeyFile)
	assert.Equal(t, 20*time.Minute, cfg.ConsoleAuth.SessionIdle)
	assert.Equal(t, 8*time.Hour, cfg.ConsoleAuth.SessionMax)
	_, err = load(map[string]string{"CONSOLE_SESSION_IDLE": "2h", "CONSOLE_SESSION_MAX": "1h"})
	assert.ErrorContains(t, err, "CONSOLE_SESSION_IDLE (2h0m0s) must not exceed CONSOLE_SESSION_MAX (1h0m0s)")
	_, err = load(map[string]string{"CONSOLE_SESSION_MAX": "10s"})
	assert.ErrorContains(t, err, "CONSOLE_SESSION_MAX must be a duration from 1m to 720h")
}
