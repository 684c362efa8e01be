package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/contactrelay/contactrelay/internal/handlers"
	"github.com/contactrelay/contactrelay/internal/redact"
)

// setting is one configuration variable of the contract, with its flag.
type setting struct {
	env, flag, def, usage string
	secret                bool // may come from <env>_FILE (read); never printed
	// secretFile settings name a file that holds a secret (NATS
	// credentials, nkey seed, TLS key): <env>_FILE is accepted as the same
	// path, never read here, so no secret reaches a message.
	secretFile bool
}

// settings lists the service's own variables; each provider adds its own
// (see providerSpec), and allSettings gives them all.
var settings = []setting{
	{env: "NATS_URL", flag: "nats-url", def: "nats://127.0.0.1:4222", usage: "comma-separated NATS server URLs"},
	{env: "NATS_CREDS", flag: "nats-creds", usage: "NATS user credentials file", secretFile: true},
	{env: "NATS_NKEY", flag: "nats-nkey", usage: "NATS nkey seed file", secretFile: true},
	{env: "NATS_TLS_CA", flag: "nats-tls-ca", usage: "CA certificate file for NATS TLS"},
	{env: "NATS_TLS_CERT", flag: "nats-tls-cert", usage: "client certificate file for NATS TLS"},
	{env: "NATS_TLS_KEY", flag: "nats-tls-key", usage: "client key file for NATS TLS", secretFile: true},
	{env: "NATS_JS_DOMAIN", flag: "nats-js-domain", usage: "JetStream domain of the streams (a leaf node's hub); unset: the server's own"},
	{env: "CONCURRENCY", flag: "concurrency", def: "64", usage: "commands processed at once"},
	{env: "MAX_DELIVER", flag: "max-deliver", def: "10", usage: "deliveries before a command fails as exhausted"},
	{env: "ACK_WAIT", flag: "ack-wait", def: "30s", usage: "JetStream ack wait"},
	{env: "RETRY_INITIAL_INTERVAL", flag: "retry-initial-interval", def: "500ms", usage: "first backoff interval"},
	{env: "RETRY_MAX_INTERVAL", flag: "retry-max-interval", def: "30s", usage: "largest backoff interval"},
	{env: "RETRY_MAX_ELAPSED", flag: "retry-max-elapsed", def: "2m", usage: "in-process retry budget of one delivery"},
	{env: "PROVIDER_TIMEOUT", flag: "provider-timeout", def: "10s", usage: "one HTTP request to a provider"},
	{env: "DEFAULT_PROVIDER", flag: "default-provider", usage: "provider for commands that name none (instantpay or pik)"},
	{env: "CIRCUIT_FAILURES", flag: "circuit-failures", def: "5", usage: "consecutive transient failures that open a provider's circuit"},
	{env: "CIRCUIT_OPEN_FOR", flag: "circuit-open-for", def: "30s", usage: "how long an open circuit holds calls back before testing the provider"},
	{env: "HTTP_ADDR", flag: "http-addr", def: ":8080", usage: "address of /healthz, /readyz and /metrics (off: none)"},
	{env: "LOG_LEVEL", flag: "log-level", def: "info", usage: "debug, info, warn or error"},
	{env: "LOG_FORMAT", flag: "log-format", def: "json", usage: "json or text"},
	{env: "SHUTDOWN_GRACE", flag: "shutdown-grace", def: "30s", usage: "how long shutdown waits for in-flight commands"},
	{env: "EVENT_SOURCE", flag: "event-source", def: "contactrelay", usage: "CloudEvents source of the events"},
	{env: "EVENT_MAX_AGE", flag: "event-max-age", def: "720h", usage: "how long CONTACT_EVENTS keeps events; subscribers must read within it (0: for ever)"},
	{env: "RECORD_TTL", flag: "record-ttl", def: "2160h", usage: "how long a commandId's record lives after the write that settled it (never while a create call's outcome is unknown); at most one create per commandId holds within it (0: for ever)"},
}

// Config is the service's configuration, from the environment and flags.
type Config struct {
	NATSURL     string
	NATSCreds   string
	NATSNKey    string
	NATSTLSCA   string
	NATSTLSCert string
	NATSTLSKey  string
	// NATSJSDomain is the JetStream domain the streams live in; empty
	// means the connected server's own.
	NATSJSDomain string

	Concurrency int
	MaxDeliver  int
	AckWait     time.Duration
	// EventMaxAge is how long the event stream keeps events, RecordTTL
	// how long a record lives after the write that settled it; zero: for
	// ever.
	EventMaxAge     time.Duration
	RecordTTL       time.Duration
	RetryInitial    time.Duration
	RetryMax        time.Duration
	RetryMaxElapsed time.Duration
	ProviderTimeout time.Duration
	DefaultProvider string

	// Providers holds each provider's own settings, by provider name and
	// variable; the provider's spec reads them.
	Providers map[string]map[string]string
	// Protection guards each provider, by name.
	Protection map[string]handlers.Protection

	HTTPAddr      string
	LogLevel      slog.Level
	LogFormat     string
	ShutdownGrace time.Duration
	EventSource   string

	// ConsoleAddr, ConsoleUser and ConsolePassword configure the web
	// console, for the commands that serve it (settingFlagsWith
	// consoleSettings); ConsoleAddr is empty for none.
	ConsoleAddr     string
	ConsoleUser     string
	ConsolePassword string
}

// allSettings returns the service's variables and every provider's.
func allSettings() []setting {
	all := slices.Clone(settings)
	for _, p := range providerSpecs {
		all = append(all, p.settings...)
	}
	return all
}

// configFlags registers a flag for every setting on fs: the service's
// commands ('run', 'dev') take them all. The returned function builds the
// Config from the flags given, the environment and the defaults, in that
// order, and reports every bad value at once (a usage error: exit 2).
func configFlags(fs *flag.FlagSet, getenv func(string) string) func() (Config, error) {
	return settingFlags(fs, getenv, func(setting) bool { return true })
}

// toolFlags registers the NATS connection's flags on fs, and those of the
// settings named by their variables in also (a tool's few service
// settings, such as setup's ACK_WAIT). The Config is built as configFlags
// builds it: every other setting still comes from the environment.
func toolFlags(fs *flag.FlagSet, getenv func(string) string, also ...string) func() (Config, error) {
	return settingFlags(fs, getenv, func(s setting) bool { return s.connection() || slices.Contains(also, s.env) })
}

// connection reports whether s is a setting of the NATS connection, which
// every command takes as a flag.
func (s setting) connection() bool { return strings.HasPrefix(s.env, "NATS_") }

// settingValue is the flag of a setting: it keeps what was given by
// variable name, for the loader. Help tells settings from a command's own
// flags by it.
type settingValue struct {
	env   string
	given map[string]string
}

func (v settingValue) String() string     { return "" }
func (v settingValue) Set(s string) error { v.given[v.env] = s; return nil }

// settingFlags registers a flag for each setting that flagged accepts, and
// returns the Config's loader.
func settingFlags(fs *flag.FlagSet, getenv func(string) string, flagged func(setting) bool) func() (Config, error) {
	return settingFlagsWith(fs, getenv, flagged, nil)
}

// settingFlagsWith is settingFlags with a command's own settings besides
// the service's (consoleSettings), each with its flag.
func settingFlagsWith(fs *flag.FlagSet, getenv func(string) string, flagged func(setting) bool, extra []setting) func() (Config, error) {
	given := map[string]string{}
	all := append(allSettings(), extra...)
	for _, s := range all {
		if !flagged(s) && !slices.Contains(extra, s) {
			continue
		}
		usage := fmt.Sprintf("%s (env %s", s.usage, s.env)
		if s.def != "" {
			usage += ", default " + s.def
		}
		usage += ")"
		fs.Var(settingValue{env: s.env, given: given}, s.flag, usage)
	}
	return func() (Config, error) {
		var errs []error
		values := map[string]string{}
		for _, s := range all {
			v, ok := given[s.env]
			if !ok {
				v = getenv(s.env)
			}
			if v == "" && s.secretFile {
				v = getenv(s.env + "_FILE")
			}
			if v == "" && s.secret {
				if path := getenv(s.env + "_FILE"); path != "" {
					b, err := os.ReadFile(path)
					if err != nil {
						errs = append(errs, fmt.Errorf("%s_FILE: %w", s.env, err))
					}
					v = strings.TrimSpace(string(b))
				}
			}
			if v == "" && !(ok && given[s.env] == "") { // an empty flag is meant
				v = s.def
			}
			values[s.env] = v
		}
		cfg, perrs := parseConfig(values)
		if err := errors.Join(append(errs, perrs...)...); err != nil {
			return cfg, &exitError{code: 2, err: fmt.Errorf("configuration:\n%w", err)}
		}
		return cfg, nil
	}
}

// The ranges of the numeric settings: wide enough for any deployment we
// know of, narrow enough to catch a slip of the finger. CONCURRENCY stops
// at 4096 so that instances × CONCURRENCY can stay under the durable's
// MaxAckPending (10000) with two instances or more.
const (
	maxConcurrency     = 4096
	maxDeliverLimit    = 100
	maxCircuitFailures = 1000
	maxRateLimit       = 1e6
)

// parseConfig turns the settings' text into a Config, checking each value
// once: a bad value gives one error, and a check that involves two
// settings is made only when both are good.
func parseConfig(v map[string]string) (Config, []error) {
	var errs []error
	bad := map[string]bool{}
	fail := func(env string, format string, args ...any) {
		bad[env] = true
		errs = append(errs, fmt.Errorf("%s "+format, append([]any{env}, args...)...))
	}
	num := func(env string, lo, hi int) int {
		n, err := strconv.Atoi(strings.TrimSpace(v[env]))
		if err != nil || n < lo || n > hi {
			fail(env, "must be a whole number from %d to %d, not %q", lo, hi, v[env])
		}
		return n
	}
	dur := func(env string, lo, hi time.Duration) time.Duration {
		d, err := time.ParseDuration(strings.TrimSpace(v[env]))
		if err != nil || d < lo || d > hi {
			fail(env, "must be a duration from %s to %s, such as 30s or 2m, not %q", lo, hi, v[env])
		}
		return d
	}
	cfg := Config{
		NATSURL:         v["NATS_URL"],
		NATSCreds:       v["NATS_CREDS"],
		NATSNKey:        v["NATS_NKEY"],
		NATSTLSCA:       v["NATS_TLS_CA"],
		NATSTLSCert:     v["NATS_TLS_CERT"],
		NATSTLSKey:      v["NATS_TLS_KEY"],
		NATSJSDomain:    v["NATS_JS_DOMAIN"],
		Concurrency:     num("CONCURRENCY", 1, maxConcurrency),
		MaxDeliver:      num("MAX_DELIVER", 1, maxDeliverLimit),
		AckWait:         dur("ACK_WAIT", time.Second, time.Hour),
		RetryInitial:    dur("RETRY_INITIAL_INTERVAL", time.Millisecond, time.Hour),
		RetryMax:        dur("RETRY_MAX_INTERVAL", time.Millisecond, time.Hour),
		RetryMaxElapsed: dur("RETRY_MAX_ELAPSED", time.Millisecond, 24*time.Hour),
		ProviderTimeout: dur("PROVIDER_TIMEOUT", time.Millisecond, 10*time.Minute),
		DefaultProvider: v["DEFAULT_PROVIDER"],
		HTTPAddr:        httpAddr(v["HTTP_ADDR"]),
		LogFormat:       v["LOG_FORMAT"],
		ShutdownGrace:   dur("SHUTDOWN_GRACE", time.Millisecond, time.Hour),
		EventSource:     v["EVENT_SOURCE"],
		EventMaxAge:     dur("EVENT_MAX_AGE", 0, 100*365*24*time.Hour),
		RecordTTL:       dur("RECORD_TTL", 0, 100*365*24*time.Hour),
	}
	if cfg.EventMaxAge > 0 && cfg.EventMaxAge < time.Hour {
		fail("EVENT_MAX_AGE", "must be 0 (for ever) or at least 1h, not %s: subscribers need time to read", cfg.EventMaxAge)
	}
	if cfg.RecordTTL > 0 && cfg.RecordTTL < 24*time.Hour {
		fail("RECORD_TTL", "must be 0 (for ever) or at least 24h, not %s: a record must outlive every redelivery and replay of its command", cfg.RecordTTL)
	}
	failures := num("CIRCUIT_FAILURES", 1, maxCircuitFailures)
	openFor := dur("CIRCUIT_OPEN_FOR", time.Millisecond, time.Hour)
	cfg.Providers = map[string]map[string]string{}
	cfg.Protection = map[string]handlers.Protection{}
	var names []string
	for _, p := range providerSpecs {
		names = append(names, p.name)
		own := map[string]string{}
		for _, st := range p.settings {
			own[st.env] = v[st.env]
		}
		cfg.Providers[p.name] = own
		prefix := strings.ToUpper(p.name)
		rate, err := strconv.ParseFloat(strings.TrimSpace(v[prefix+"_RATE_LIMIT"]), 64)
		if err != nil || math.IsNaN(rate) || rate < 0 || rate > maxRateLimit {
			fail(prefix+"_RATE_LIMIT", "must be a number of calls per second from 0 (no limit) to %g, not %q", float64(maxRateLimit), v[prefix+"_RATE_LIMIT"])
		}
		cfg.Protection[p.name] = handlers.Protection{
			RateLimit:       rate,
			MaxConcurrency:  num(prefix+"_MAX_CONCURRENCY", 0, maxConcurrency),
			BreakerFailures: uint32(max(failures, 1)),
			BreakerOpenFor:  openFor,
		}
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(v["LOG_LEVEL"])); err != nil {
		fail("LOG_LEVEL", "must be debug, info, warn or error, not %q", v["LOG_LEVEL"])
	}
	if cfg.LogFormat != "json" && cfg.LogFormat != "text" {
		fail("LOG_FORMAT", "must be json or text, not %q", cfg.LogFormat)
	}
	if cfg.DefaultProvider != "" && !slices.Contains(names, cfg.DefaultProvider) {
		fail("DEFAULT_PROVIDER", "must be one of %s, not %q", strings.Join(names, ", "), cfg.DefaultProvider)
	}
	if strings.TrimSpace(cfg.EventSource) == "" {
		fail("EVENT_SOURCE", "must not be empty: it is the events' CloudEvents source")
	}
	for _, env := range slices.Sorted(maps.Keys(v)) {
		if !strings.HasSuffix(env, "_BASE_URL") || v[env] == "" {
			continue
		}
		if u, err := url.Parse(v[env]); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			fail(env, "must be an http or https URL, not %q", v[env])
		}
	}
	if addr, ok := v["CONSOLE_ADDR"]; ok {
		cfg.ConsoleAddr, cfg.ConsoleUser, cfg.ConsolePassword = httpAddr(addr), v["CONSOLE_USER"], v["CONSOLE_PASSWORD"]
		if cfg.ConsoleAddr != "" {
			if err := checkListenAddr(cfg.ConsoleAddr); err != nil {
				fail("CONSOLE_ADDR", "must be host:port or off, not %q: %v", addr, err)
			}
		}
	}
	if err := checkNATSURLs(cfg.NATSURL); err != nil {
		fail("NATS_URL", "%v", err)
	}
	if cfg.HTTPAddr != "" {
		if err := checkListenAddr(cfg.HTTPAddr); err != nil {
			fail("HTTP_ADDR", "must be host:port, :port or off, not %q: %v", cfg.HTTPAddr, err)
		}
	}
	errs = append(errs, checkNATSFiles(cfg)...)
	if !bad["RETRY_INITIAL_INTERVAL"] && !bad["RETRY_MAX_INTERVAL"] && cfg.RetryInitial > cfg.RetryMax {
		errs = append(errs, fmt.Errorf("RETRY_INITIAL_INTERVAL (%s) must not exceed RETRY_MAX_INTERVAL (%s)", cfg.RetryInitial, cfg.RetryMax))
	}
	return cfg, errs
}

// natsSchemes are the URL schemes nats.go connects with.
var natsSchemes = []string{"nats", "tls", "ws", "wss"}

// checkNATSURLs checks the syntax of a comma-separated list of NATS URLs
// (a URL without a scheme is nats://); the error shows them redacted.
// Whether a host name resolves is for the connection to find out.
func checkNATSURLs(urls string) error {
	var errs []string
	for _, raw := range strings.Split(urls, ",") {
		s := strings.TrimSpace(raw)
		if s == "" {
			errs = append(errs, "an empty URL")
			continue
		}
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		shown := strconv.Quote(redactURLs(strings.TrimSpace(raw)))
		u, err := url.Parse(s)
		switch {
		case err != nil:
			var uerr *url.Error
			if errors.As(err, &uerr) {
				err = uerr.Err // its text quotes the URL whole
			}
			errs = append(errs, fmt.Sprintf("%s: %v", shown, redactError(err, s)))
		case !slices.Contains(natsSchemes, u.Scheme):
			errs = append(errs, fmt.Sprintf("%s: the scheme must be one of %s", shown, strings.Join(natsSchemes, ", ")))
		case u.Hostname() == "":
			errs = append(errs, fmt.Sprintf("%s: no host", shown))
		case u.Port() != "":
			if n, err := strconv.Atoi(u.Port()); err != nil || n < 1 || n > 65535 {
				errs = append(errs, fmt.Sprintf("%s: the port must be from 1 to 65535", shown))
			}
		}
	}
	if len(errs) > 0 {
		return errors.New("must be comma-separated NATS URLs such as nats://host:4222: " + strings.Join(errs, "; "))
	}
	return nil
}

// checkListenAddr checks the syntax of an address to listen on: a host
// (or none) and a port number.
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		var aerr *net.AddrError
		if errors.As(err, &aerr) {
			return errors.New(aerr.Err)
		}
		return err
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("the port must be a number from 0 to 65535")
	}
	return nil
}

// checkNATSFiles checks that the NATS credential and TLS files exist, and
// that a client certificate comes with its key. It does not read them.
func checkNATSFiles(cfg Config) []error {
	var errs []error
	switch {
	case cfg.NATSTLSCert != "" && cfg.NATSTLSKey == "":
		errs = append(errs, errors.New("NATS_TLS_CERT is set without NATS_TLS_KEY: a client certificate needs its key"))
	case cfg.NATSTLSKey != "" && cfg.NATSTLSCert == "":
		errs = append(errs, errors.New("NATS_TLS_KEY is set without NATS_TLS_CERT: a client key needs its certificate"))
	}
	for _, f := range []struct{ env, path string }{
		{"NATS_CREDS", cfg.NATSCreds}, {"NATS_NKEY", cfg.NATSNKey}, {"NATS_TLS_CA", cfg.NATSTLSCA},
		{"NATS_TLS_CERT", cfg.NATSTLSCert}, {"NATS_TLS_KEY", cfg.NATSTLSKey},
	} {
		if f.path == "" {
			continue
		}
		if fi, err := os.Stat(f.path); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.env, err))
		} else if fi.IsDir() {
			errs = append(errs, fmt.Errorf("%s: %s is a folder, not a file", f.env, f.path))
		}
	}
	return errs
}

// newLogger returns the service's logger: JSON or text on w, with personal
// data masked in every line.
func newLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: redact.ReplaceAttr}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// redacted returns c with every secret replaced, for printing.
func (c Config) redacted() Config {
	secret := map[string]bool{}
	for _, s := range append(allSettings(), consoleSettings...) {
		secret[s.env] = s.secret
	}
	providers := make(map[string]map[string]string, len(c.Providers))
	for name, own := range c.Providers {
		shown := make(map[string]string, len(own))
		for k, v := range own {
			if secret[k] && v != "" {
				v = "[redacted]"
			}
			shown[k] = v
		}
		providers[name] = shown
	}
	c.Providers = providers
	c.NATSURL = redactURLs(c.NATSURL)
	if c.ConsolePassword != "" {
		c.ConsolePassword = "[redacted]"
	}
	return c
}

// String prints the configuration with its secrets redacted.
func (c Config) String() string {
	type plain Config // no methods: no recursion
	return fmt.Sprintf("%+v", plain(c.redacted()))
}

// GoString is String, so that %#v redacts too.
func (c Config) GoString() string { return c.String() }

// LogValue logs the configuration with its secrets redacted.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// httpAddr reads HTTP_ADDR: "off" (or "none") turns the HTTP server off,
// since an empty variable cannot be told from an unset one.
func httpAddr(v string) string {
	if strings.EqualFold(v, "off") || strings.EqualFold(v, "none") {
		return ""
	}
	return v
}
