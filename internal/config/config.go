// Package config reads the service's configuration: the settings of the
// contract (docs/CLI.md), each provider's own, and the console's, from
// flags, the environment and their defaults, in that order. A Config is
// checked whole: every bad value is reported at once. Its String and
// LogValue never show a secret.
package config

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
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/contactrelay/contactrelay/internal/exit"
	"github.com/contactrelay/contactrelay/internal/redact"
)

// Setting is one configuration variable, with its flag.
type Setting struct {
	// Env is the variable, Flag its flag (without dashes), Default the
	// value when neither is given ("" for none), Usage its help.
	Env, Flag, Default, Usage string
	// Secret settings may come from <Env>_FILE (read) and are never printed.
	Secret bool
	// SecretFile settings name a file that holds a secret (NATS
	// credentials, nkey seed, TLS key): <Env>_FILE is accepted as the same
	// path, never read here, so no secret reaches a message.
	SecretFile bool
}

// Provider is a provider's part of the configuration: its name and its
// variables, among them <NAME>_RATE_LIMIT and <NAME>_MAX_CONCURRENCY.
// The provider registry (internal/providers) lists them.
type Provider struct {
	Name     string
	Settings []Setting
}

// ServiceSettings returns the service's own variables; each provider adds
// its own (Provider), and All gives them all.
func ServiceSettings() []Setting {
	return []Setting{
		{Env: "NATS_URL", Flag: "nats-url", Default: "nats://127.0.0.1:4222", Usage: "comma-separated NATS server URLs"},
		{Env: "NATS_CREDS", Flag: "nats-creds", Usage: "NATS user credentials file", SecretFile: true},
		{Env: "NATS_NKEY", Flag: "nats-nkey", Usage: "NATS nkey seed file", SecretFile: true},
		{Env: "NATS_TLS_CA", Flag: "nats-tls-ca", Usage: "CA certificate file for NATS TLS"},
		{Env: "NATS_TLS_CERT", Flag: "nats-tls-cert", Usage: "client certificate file for NATS TLS"},
		{Env: "NATS_TLS_KEY", Flag: "nats-tls-key", Usage: "client key file for NATS TLS", SecretFile: true},
		{Env: "NATS_JS_DOMAIN", Flag: "nats-js-domain", Usage: "JetStream domain of the streams (a leaf node's hub); unset: the server's own"},
		{Env: "NATS_INBOX_PREFIX", Flag: "nats-inbox-prefix", Default: "_INBOX", Usage: "subject prefix of this connection's replies (the role's own, such as _INBOX_service, where the server lets each role read only its own)"},
		{Env: "CONCURRENCY", Flag: "concurrency", Default: "64", Usage: "commands processed at once"},
		{Env: "MAX_DELIVER", Flag: "max-deliver", Default: "10", Usage: "deliveries before a command fails as exhausted"},
		{Env: "ACK_WAIT", Flag: "ack-wait", Default: "30s", Usage: "JetStream ack wait"},
		{Env: "RETRY_INITIAL_INTERVAL", Flag: "retry-initial-interval", Default: "500ms", Usage: "first backoff interval"},
		{Env: "RETRY_MAX_INTERVAL", Flag: "retry-max-interval", Default: "30s", Usage: "largest backoff interval"},
		{Env: "RETRY_MAX_ELAPSED", Flag: "retry-max-elapsed", Default: "2m", Usage: "in-process retry budget of one delivery"},
		{Env: "PROVIDER_TIMEOUT", Flag: "provider-timeout", Default: "10s", Usage: "one HTTP request to a provider"},
		{Env: "DEFAULT_PROVIDER", Flag: "default-provider", Usage: "provider for commands that name none (instantpay or pik)"},
		{Env: "CIRCUIT_FAILURES", Flag: "circuit-failures", Default: "5", Usage: "consecutive transient failures that open a provider's circuit"},
		{Env: "CIRCUIT_OPEN_FOR", Flag: "circuit-open-for", Default: "30s", Usage: "how long an open circuit holds calls back before testing the provider"},
		{Env: "PAUSE_HOLD_DELAY", Flag: "pause-hold-delay", Default: "5s", Usage: "how long a command of a paused provider waits before it is delivered again (consumer pause)"},
		{Env: "HTTP_ADDR", Flag: "http-addr", Default: ":8080", Usage: "address of /healthz, /readyz and /metrics (off: none)"},
		{Env: "LOG_LEVEL", Flag: "log-level", Default: "info", Usage: "debug, info, warn or error"},
		{Env: "LOG_FORMAT", Flag: "log-format", Default: "json", Usage: "json or text"},
		{Env: "SHUTDOWN_GRACE", Flag: "shutdown-grace", Default: "30s", Usage: "how long shutdown waits for in-flight commands"},
		{Env: "EVENT_SOURCE", Flag: "event-source", Default: "contactrelay", Usage: "CloudEvents source of the events"},
		{Env: "EVENT_MAX_AGE", Flag: "event-max-age", Default: "720h", Usage: "how long CONTACT_EVENTS keeps events; subscribers must read within it (0: for ever)"},
		{Env: "AUDIT_MAX_AGE", Flag: "audit-max-age", Default: "9600h", Usage: "how long CONTACT_AUDIT keeps the audit trail (400 days; at least 24h)"},
		{Env: "RECORD_TTL", Flag: "record-ttl", Default: "2160h", Usage: "how long a commandId's record lives after the write that settled it (never while a create call's outcome is unknown); at most one create per commandId holds within it (0: for ever)"},
	}
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
	// NATSInboxPrefix starts the subjects of the connection's replies
	// (nats.go's "_INBOX" by default): a role's own prefix lets the
	// server keep other users from reading its replies.
	NATSInboxPrefix string

	Concurrency int
	MaxDeliver  int
	AckWait     time.Duration
	// EventMaxAge is how long the event stream keeps events, RecordTTL
	// how long a record lives after the write that settled it; zero: for
	// ever.
	EventMaxAge time.Duration
	RecordTTL   time.Duration
	// AuditMaxAge is how long the audit stream keeps its entries.
	AuditMaxAge     time.Duration
	RetryInitial    time.Duration
	RetryMax        time.Duration
	RetryMaxElapsed time.Duration
	ProviderTimeout time.Duration
	DefaultProvider string
	// PauseHoldDelay is how long a held command (its provider paused)
	// waits before its next delivery.
	PauseHoldDelay time.Duration

	// Providers holds each provider's own settings, by provider name and
	// variable; the provider's spec reads them.
	Providers map[string]map[string]string
	// Protection guards each provider, by name.
	Protection map[string]Protection

	HTTPAddr      string
	LogLevel      slog.Level
	LogFormat     string
	ShutdownGrace time.Duration
	EventSource   string

	// ConsoleAddr, ConsoleUser and ConsolePassword configure the web
	// console, for the commands that serve it (Flags with
	// ConsoleSettings); ConsoleAddr is empty for none.
	ConsoleAddr     string
	ConsoleUser     string
	ConsolePassword string
	// ConsoleAuth are the console's other accounts and roles.
	ConsoleAuth ConsoleAuth

	// secret tells the variables whose values are never printed, as the
	// loader found them; a Config made otherwise redacts every provider
	// value.
	secret map[string]bool
}

// Protection is how a provider is guarded: the service's handler applies
// it (handlers.Protection has the same fields and meanings).
type Protection struct {
	// RateLimit is the most calls per second; zero means unlimited.
	RateLimit float64
	// MaxConcurrency is the most calls at once; zero means unlimited.
	MaxConcurrency int
	// BreakerFailures is the run of consecutive transient failures that
	// opens the circuit.
	BreakerFailures uint32
	// BreakerOpenFor is how long an open circuit refuses calls before it
	// lets one through to test the provider.
	BreakerOpenFor time.Duration
}

// All returns the service's variables and every provider's, in that order.
func All(providers []Provider) []Setting {
	all := ServiceSettings()
	for _, p := range providers {
		all = append(all, p.Settings...)
	}
	return all
}

// Connection reports whether s is a setting of the NATS connection, which
// every command takes as a flag.
func (s Setting) Connection() bool { return strings.HasPrefix(s.Env, "NATS_") }

// settingValue is the flag of a setting: it keeps what was given by
// variable name, for the loader. IsSettingFlag tells settings from a
// command's own flags by it.
type settingValue struct {
	env   string
	given map[string]string
}

func (v settingValue) String() string     { return "" }
func (v settingValue) Set(s string) error { v.given[v.env] = s; return nil }

// IsSettingFlag reports whether f is the flag of a setting (registered by
// Flags), rather than a command's own flag of the same name.
func IsSettingFlag(f *flag.Flag) bool {
	_, ok := f.Value.(settingValue)
	return ok
}

// Flags registers on fs a flag for each setting of the service and of
// providers that flagged accepts, and for each of extra (a command's own
// settings besides the service's, such as ConsoleSettings). The returned
// function builds the Config from the flags given, getenv and the
// defaults, in that order (a secret may come from <ENV>_FILE), and
// reports every bad value at once: an *exit.Error with code 2 whose
// message starts "configuration:" and gives one line per problem.
func Flags(fs *flag.FlagSet, getenv func(string) string, providers []Provider, flagged func(Setting) bool, extra []Setting) func() (Config, error) {
	given := map[string]string{}
	all := append(All(providers), extra...)
	for _, s := range all {
		if !flagged(s) && !slices.Contains(extra, s) {
			continue
		}
		usage := fmt.Sprintf("%s (env %s", s.Usage, s.Env)
		if s.Default != "" {
			usage += ", default " + s.Default
		}
		usage += ")"
		fs.Var(settingValue{env: s.Env, given: given}, s.Flag, usage)
	}
	return func() (Config, error) {
		var errs []error
		values := map[string]string{}
		secret := map[string]bool{}
		for _, s := range all {
			secret[s.Env] = s.Secret
			v, ok := given[s.Env]
			if !ok {
				v = getenv(s.Env)
			}
			if v == "" && s.SecretFile {
				v = getenv(s.Env + "_FILE")
			}
			if v == "" && s.Secret {
				if path := getenv(s.Env + "_FILE"); path != "" {
					b, err := os.ReadFile(path)
					if err != nil {
						errs = append(errs, fmt.Errorf("%s_FILE: %w", s.Env, err))
					}
					v = strings.TrimSpace(string(b))
				}
			}
			if v == "" && !(ok && given[s.Env] == "") { // an empty flag is meant
				v = s.Default
			}
			values[s.Env] = v
		}
		cfg, perrs := parseConfig(values, providers)
		cfg.secret = secret
		if err := errors.Join(append(errs, perrs...)...); err != nil {
			return cfg, &exit.Error{Code: 2, Err: fmt.Errorf("configuration:\n%w", err)}
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
func parseConfig(v map[string]string, providers []Provider) (Config, []error) {
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
		NATSInboxPrefix: v["NATS_INBOX_PREFIX"],
		Concurrency:     num("CONCURRENCY", 1, maxConcurrency),
		MaxDeliver:      num("MAX_DELIVER", 1, maxDeliverLimit),
		AckWait:         dur("ACK_WAIT", time.Second, time.Hour),
		RetryInitial:    dur("RETRY_INITIAL_INTERVAL", time.Millisecond, time.Hour),
		RetryMax:        dur("RETRY_MAX_INTERVAL", time.Millisecond, time.Hour),
		RetryMaxElapsed: dur("RETRY_MAX_ELAPSED", time.Millisecond, 24*time.Hour),
		ProviderTimeout: dur("PROVIDER_TIMEOUT", time.Millisecond, 10*time.Minute),
		PauseHoldDelay:  dur("PAUSE_HOLD_DELAY", time.Millisecond, time.Hour),
		DefaultProvider: v["DEFAULT_PROVIDER"],
		HTTPAddr:        httpAddr(v["HTTP_ADDR"]),
		LogFormat:       v["LOG_FORMAT"],
		ShutdownGrace:   dur("SHUTDOWN_GRACE", time.Millisecond, time.Hour),
		EventSource:     v["EVENT_SOURCE"],
		EventMaxAge:     dur("EVENT_MAX_AGE", 0, 100*365*24*time.Hour),
		RecordTTL:       dur("RECORD_TTL", 0, 100*365*24*time.Hour),
		AuditMaxAge:     dur("AUDIT_MAX_AGE", 24*time.Hour, 100*365*24*time.Hour),
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
	cfg.Protection = map[string]Protection{}
	var names []string
	for _, p := range providers {
		names = append(names, p.Name)
		own := map[string]string{}
		for _, st := range p.Settings {
			own[st.Env] = v[st.Env]
		}
		cfg.Providers[p.Name] = own
		prefix := strings.ToUpper(p.Name)
		rate, err := strconv.ParseFloat(strings.TrimSpace(v[prefix+"_RATE_LIMIT"]), 64)
		if err != nil || math.IsNaN(rate) || rate < 0 || rate > maxRateLimit {
			fail(prefix+"_RATE_LIMIT", "must be a number of calls per second from 0 (no limit) to %g, not %q", float64(maxRateLimit), v[prefix+"_RATE_LIMIT"])
		}
		cfg.Protection[p.Name] = Protection{
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
		cfg.ConsoleAuth = parseConsoleAuth(v, fail)
		if cfg.ConsoleAddr != "" {
			if err := checkListenAddr(cfg.ConsoleAddr); err != nil {
				fail("CONSOLE_ADDR", "must be host:port or off, not %q: %v", addr, err)
			}
		}
	}
	if err := checkNATSURLs(cfg.NATSURL); err != nil {
		fail("NATS_URL", "%v", err)
	}
	if !inboxPrefix.MatchString(cfg.NATSInboxPrefix) {
		fail("NATS_INBOX_PREFIX", "must be subject tokens of letters, digits, '_' and '-' separated by '.', such as _INBOX_service, not %q", cfg.NATSInboxPrefix)
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
		shown := strconv.Quote(redact.URLs(strings.TrimSpace(raw)))
		u, err := url.Parse(s)
		switch {
		case err != nil:
			var uerr *url.Error
			if errors.As(err, &uerr) {
				err = uerr.Err // its text quotes the URL whole
			}
			errs = append(errs, fmt.Sprintf("%s: %v", shown, redact.Error(err, s)))
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

// inboxPrefix matches a valid NATS_INBOX_PREFIX: literal subject tokens
// (no wildcards), since nats.go appends ".<id>" to it.
var inboxPrefix = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

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

// NewLogger returns the service's logger: JSON or text on w, with personal
// data masked in every line.
func NewLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: redact.ReplaceAttr}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// redacted returns c with every secret replaced, for printing.
func (c Config) redacted() Config {
	providers := make(map[string]map[string]string, len(c.Providers))
	for name, own := range c.Providers {
		shown := make(map[string]string, len(own))
		for k, v := range own {
			if (c.secret == nil || c.secret[k]) && v != "" {
				v = "[redacted]"
			}
			shown[k] = v
		}
		providers[name] = shown
	}
	c.Providers = providers
	c.secret = nil // what the loader knew of the settings, not configuration
	c.NATSURL = redact.URLs(c.NATSURL)
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
