package main

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// connectNATS connects to the configured NATS servers, with the configured
// credentials and TLS, reconnecting for ever once connected. A failure to
// connect names NATS_URL, its user information redacted.
func connectNATS(cfg Config, name string, log *slog.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: we closed it
				log.Warn("disconnected from NATS", "error", redactError(err, cfg.NATSURL))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to NATS", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("NATS error", "error", redactError(err, cfg.NATSURL))
		}),
	}
	if cfg.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(cfg.NATSCreds))
	}
	if cfg.NATSNKey != "" {
		opt, err := nats.NkeyOptionFromSeed(cfg.NATSNKey)
		if err != nil {
			return nil, fmt.Errorf("NATS_NKEY: %w", err)
		}
		opts = append(opts, opt)
	}
	if cfg.NATSTLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.NATSTLSCA))
	}
	if cfg.NATSTLSCert != "" || cfg.NATSTLSKey != "" {
		opts = append(opts, nats.ClientCert(cfg.NATSTLSCert, cfg.NATSTLSKey))
	}
	nc, err := nats.Connect(cfg.NATSURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s (NATS_URL): %w (is a server running? 'consumer dev' starts one)",
			redactURLs(cfg.NATSURL), redactError(err, cfg.NATSURL))
	}
	return nc, nil
}

// redactURLs returns a comma-separated list of NATS URLs with the user
// information of each hidden: a password becomes xxxxx, and so does a user
// given alone (NATS reads it as a token). It works on the text, so that
// URLs that do not parse are redacted too.
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		if info, ok := userInfo(u); ok {
			parts[i] = strings.Replace(u, info+"@", redactUserInfo(info)+"@", 1)
		}
	}
	return strings.Join(parts, ",")
}

// userInfo returns the text between a URL's scheme (if any) and its last @.
func userInfo(u string) (string, bool) {
	start := 0
	if i := strings.Index(u, "://"); i >= 0 {
		start = i + len("://")
	}
	at := strings.LastIndex(u, "@")
	if at < start {
		return "", false
	}
	return u[start:at], true
}

func redactUserInfo(info string) string {
	if user, _, ok := strings.Cut(info, ":"); ok {
		return user + ":xxxxx"
	}
	return "xxxxx" // a token
}

// redactError returns err with the user information of urls hidden from
// its message (nats.go quotes a URL it cannot parse whole); it still
// unwraps to err.
func redactError(err error, urls string) error {
	var pairs []string
	for _, u := range strings.Split(urls, ",") {
		if info, ok := userInfo(u); ok {
			pairs = append(pairs, info+"@", redactUserInfo(info)+"@")
		}
	}
	if err == nil || len(pairs) == 0 {
		return err
	}
	return &redactedError{err: err, replacer: strings.NewReplacer(pairs...)}
}

// redactedError is an error whose message is shown through replacer.
type redactedError struct {
	err      error
	replacer *strings.Replacer
}

func (e *redactedError) Error() string { return e.replacer.Replace(e.err.Error()) }

func (e *redactedError) Unwrap() error { return e.err }
