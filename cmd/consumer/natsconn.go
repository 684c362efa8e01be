package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// connectNATS connects to the configured NATS servers, with the configured
// credentials and TLS, reconnecting for ever once connected. A failure to
// connect is an *exitError with code 2 whose message names NATS_URL (its
// user information redacted) and says what to check.
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
			return nil, &exitError{code: 2, err: fmt.Errorf("NATS_NKEY: %w", err)}
		}
		opts = append(opts, opt)
	}
	if cfg.NATSTLSCA != "" {
		// Read here, so that a bad file is named as such rather than
		// mistaken for a server that cannot be reached.
		pem, err := os.ReadFile(cfg.NATSTLSCA)
		if err != nil {
			return nil, &exitError{code: 2, err: fmt.Errorf("NATS_TLS_CA: %w", err)}
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return nil, &exitError{code: 2, err: fmt.Errorf("NATS_TLS_CA: %s holds no PEM certificate", cfg.NATSTLSCA)}
		}
		opts = append(opts, nats.RootCAs(cfg.NATSTLSCA))
	}
	if cfg.NATSTLSCert != "" || cfg.NATSTLSKey != "" {
		if _, err := tls.LoadX509KeyPair(cfg.NATSTLSCert, cfg.NATSTLSKey); err != nil {
			return nil, &exitError{code: 2, err: fmt.Errorf("NATS_TLS_CERT and NATS_TLS_KEY: %w", err)}
		}
		opts = append(opts, nats.ClientCert(cfg.NATSTLSCert, cfg.NATSTLSKey))
	}
	nc, err := nats.Connect(cfg.NATSURL, opts...)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("connect to NATS at %s (NATS_URL): %w%s",
			redactURLs(cfg.NATSURL), redactError(err, cfg.NATSURL), connectHint(err))}
	}
	return nc, nil
}

// connectHint says what to check after a failure to connect: the server
// answered and refused, TLS failed, a name did not resolve, or no server
// answered at all.
func connectHint(err error) string {
	var (
		dnsErr    *net.DNSError
		verifyErr *tls.CertificateVerificationError
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
		alert     tls.AlertError
		record    tls.RecordHeaderError
		opErr     *net.OpError
	)
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired),
		errors.Is(err, nats.ErrAuthRevoked), errors.Is(err, nats.ErrAccountAuthExpired):
		return " (the server refused the credentials: check NATS_CREDS, NATS_NKEY, or the user and password in NATS_URL)"
	case errors.Is(err, nats.ErrSecureConnRequired), errors.Is(err, nats.ErrSecureConnWanted),
		errors.As(err, &verifyErr), errors.As(err, &unknownCA), errors.As(err, &hostErr),
		errors.As(err, &invalid), errors.As(err, &alert), errors.As(err, &record):
		return " (TLS failed: check NATS_TLS_CA, NATS_TLS_CERT and NATS_TLS_KEY, and that NATS_URL says tls:// where the server wants TLS)"
	case errors.As(err, &dnsErr):
		return " (check the host names in NATS_URL)"
	case errors.Is(err, nats.ErrNoServers), errors.Is(err, nats.ErrTimeout), errors.As(err, &opErr):
		return " (is a server running? 'consumer dev' starts one)"
	}
	return ""
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

// newJetStream returns the JetStream context of the configured domain
// (NATS_JS_DOMAIN), or of the connected server's own when none is set.
func newJetStream(nc *nats.Conn, cfg Config) (jetstream.JetStream, error) {
	if cfg.NATSJSDomain != "" {
		return jetstream.NewWithDomain(nc, cfg.NATSJSDomain)
	}
	return jetstream.New(nc)
}
