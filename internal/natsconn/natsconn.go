// Package natsconn connects the service and its tools to NATS: with the
// configured credentials, nkey and TLS, to the configured JetStream
// domain, with errors that name NATS_URL (its secrets redacted), say what
// to check, and exit with 2.
package natsconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/client"
	"github.com/contactrelay/contactrelay/internal/config"
	"github.com/contactrelay/contactrelay/internal/exit"
	"github.com/contactrelay/contactrelay/internal/provision"
	"github.com/contactrelay/contactrelay/internal/redact"
)

// Connect connects to the configured NATS servers, with the configured
// credentials and TLS, reconnecting for ever once connected; name names
// the connection to the server, and log hears of disconnections,
// reconnections and asynchronous errors. The caller closes the
// connection. A failure to connect is an *exit.Error with code 2 whose message names NATS_URL (its
// user information redacted) and says what to check. Options in extra
// come last: an ErrorHandler there replaces the one that logs.
func Connect(cfg config.Config, name string, log *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: we closed it
				log.Warn("disconnected from NATS", "error", redact.Error(err, cfg.NATSURL))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to NATS", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("NATS error", "error", redact.Error(err, cfg.NATSURL))
		}),
	}
	if cfg.NATSInboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(cfg.NATSInboxPrefix))
	}
	if cfg.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(cfg.NATSCreds))
	}
	if cfg.NATSNKey != "" {
		opt, err := nats.NkeyOptionFromSeed(cfg.NATSNKey)
		if err != nil {
			return nil, &exit.Error{Code: 2, Err: fmt.Errorf("NATS_NKEY: %w", err)}
		}
		opts = append(opts, opt)
	}
	if cfg.NATSTLSCA != "" {
		// Read here, so that a bad file is named as such rather than
		// mistaken for a server that cannot be reached.
		pem, err := os.ReadFile(cfg.NATSTLSCA)
		if err != nil {
			return nil, &exit.Error{Code: 2, Err: fmt.Errorf("NATS_TLS_CA: %w", err)}
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return nil, &exit.Error{Code: 2, Err: fmt.Errorf("NATS_TLS_CA: %s holds no PEM certificate", cfg.NATSTLSCA)}
		}
		opts = append(opts, nats.RootCAs(cfg.NATSTLSCA))
	}
	if cfg.NATSTLSCert != "" || cfg.NATSTLSKey != "" {
		if _, err := tls.LoadX509KeyPair(cfg.NATSTLSCert, cfg.NATSTLSKey); err != nil {
			return nil, &exit.Error{Code: 2, Err: fmt.Errorf("NATS_TLS_CERT and NATS_TLS_KEY: %w", err)}
		}
		opts = append(opts, nats.ClientCert(cfg.NATSTLSCert, cfg.NATSTLSKey))
	}
	opts = append(opts, extra...)
	nc, err := nats.Connect(cfg.NATSURL, opts...)
	if err != nil {
		return nil, &exit.Error{Code: 2, Err: fmt.Errorf("connect to NATS at %s (NATS_URL): %w%s",
			redact.URLs(cfg.NATSURL), redact.Error(err, cfg.NATSURL), connectHint(err))}
	}
	return nc, nil
}

// refusals says on w, once per subject, what the server refused the
// connection's user (a permissions violation): the server answers a
// refused publish or request with an error on the connection only, and
// the request waits out its timeout, which on its own says nothing of why.
func refusals(w io.Writer) nats.Option {
	var (
		mu   sync.Mutex
		seen = map[string]bool{}
	)
	return nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if !errors.Is(err, nats.ErrPermissionViolation) {
			return
		}
		// nats.go's text, then the server's: "nats: permissions
		// violation: Permissions Violation for Publish to ..."
		what := err.Error()
		if _, server, ok := strings.Cut(what, "permissions violation: "); ok {
			what = server
		}
		mu.Lock()
		said := seen[what]
		if len(seen) < maxRefusalsSaid {
			seen[what] = true
		}
		mu.Unlock()
		if !said {
			fmt.Fprintf(w, "consumer: the NATS server refused this user: %s (what it refuses waits out its timeout; docs/OPERATIONS.md lists each role's subjects)\n", what)
		}
	})
}

// maxRefusalsSaid bounds the refusals remembered, so that a connection
// refused ever new subjects holds a bounded set.
const maxRefusalsSaid = 64

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

// JetStream returns the JetStream context of the configured domain
// (NATS_JS_DOMAIN), or of the connected server's own when none is set.
func JetStream(nc *nats.Conn, cfg config.Config) (jetstream.JetStream, error) {
	if cfg.NATSJSDomain != "" {
		return jetstream.NewWithDomain(nc, cfg.NATSJSDomain)
	}
	return jetstream.New(nc)
}

// ConnectJetStream connects a command-line tool to NATS and returns its
// JetStream context; the caller closes the connection. A failure to
// connect exits with 2. Each subject the server refuses the user is said
// on standard error at once (a refused request is not answered: it waits
// out its timeout).
func ConnectJetStream(cfg config.Config, name string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := Connect(cfg, name, slog.New(slog.DiscardHandler), refusals(os.Stderr))
	if err != nil {
		return nil, nil, &exit.Error{Code: 2, Err: err}
	}
	js, err := JetStream(nc, cfg)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// ConnectCommands connects a publisher to NATS and checks that the
// command stream exists; either failing is exit 2, the streams missing
// with client.ErrNoStreams. The caller closes the connection.
func ConnectCommands(ctx context.Context, cfg config.Config) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := Connect(cfg, "contactrelay-publish", slog.New(slog.DiscardHandler), refusals(os.Stderr))
	if err != nil {
		return nil, nil, &exit.Error{Code: 2, Err: err}
	}
	js, err := JetStream(nc, cfg)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	if _, err := js.Stream(ctx, provision.CommandStream); err != nil {
		nc.Close()
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, nil, &exit.Error{Code: 2, Err: client.ErrNoStreams}
		}
		return nil, nil, &exit.Error{Code: 2, Err: err}
	}
	return nc, js, nil
}
