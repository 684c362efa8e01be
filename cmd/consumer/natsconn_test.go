package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/natstest"
)

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

// TestNATSURLSecretsNeverShow runs every command that connects to NATS with
// a URL holding a password or a token, where no server listens, and checks
// that neither shows in what it prints nor in its error.
func TestNATSURLSecretsNeverShow(t *testing.T) {
	port := closedPort(t)
	urls := map[string]string{
		"password":     fmt.Sprintf("nats://jane:pa55word@127.0.0.1:%d", port),
		"token":        fmt.Sprintf("nats://t0kenvalue@127.0.0.1:%d", port),
		"several":      fmt.Sprintf("nats://jane:pa55word@127.0.0.1:%d,nats://t0kenvalue@127.0.0.1:%d", port, port),
		"bad port":     "nats://jane:pa55word@127.0.0.1:notaport",
		"bad port tok": "nats://t0kenvalue@127.0.0.1:notaport",
	}
	commands := [][]string{
		{"run"}, {"setup"}, {"failures"}, {"replay"},
		{"publish", "--name", "Jane Doe", "--email", "jane@example.com", "--mobile", "+919876543210", "--tag-id", "65a1b2c3d4e5f6a7b8c9d0e1"},
	}
	for name, url := range urls {
		for _, args := range commands {
			t.Run(name+"/"+args[0], func(t *testing.T) {
				env := map[string]string{
					"NATS_URL":             url,
					"INSTANTPAY_CLIENT_ID": "id", "INSTANTPAY_CLIENT_SECRET": "secret",
					"HTTP_ADDR": "off",
				}
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				defer cancel()
				var stdout, stderr bytes.Buffer
				err := run(ctx, args, func(k string) string { return env[k] }, strings.NewReader(""), &stdout, &stderr)
				require.Error(t, err, "nothing to connect to")
				out := err.Error() + stdout.String() + stderr.String()
				assert.NotContains(t, out, "pa55word", "no password in %q", out)
				assert.NotContains(t, out, "t0kenvalue", "no token in %q", out)
				assert.Contains(t, out, "xxxxx@127.0.0.1", "the URL is shown, redacted")
				assert.Contains(t, out, "NATS_URL", "the message names the variable")
			})
		}
	}
}

// TestNATSConnectHints checks that a failure to connect says what to check:
// credentials when the server refused them, TLS when the handshake failed,
// the host name when it did not resolve, and a server only when none
// answered. Each exits 2.
func TestNATSConnectHints(t *testing.T) {
	const startServer = "is a server running?"
	authSrv := natstest.Start(t, func(o *server.Options) { o.Username, o.Password = "jane", "right" })
	ca, caKey, caPath := newCA(t)
	srvCert := issue(t, ca, caKey, caPath, "server", 2)
	_, _, otherCA := newCA(t)
	tlsSrv := natstest.Start(t, func(o *server.Options) {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: srvCert.cert, KeyFile: srvCert.key, CaFile: caPath})
		require.NoError(t, err)
		o.TLSConfig, o.TLS = tc, true
	})
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"wrong password", map[string]string{"NATS_URL": "nats://jane:wrong@" + authSrv.Addr().String()}, "refused the credentials"},
		{"no credentials", map[string]string{"NATS_URL": "nats://" + authSrv.Addr().String()}, "refused the credentials"},
		{"an unknown CA", map[string]string{"NATS_URL": "tls://" + tlsSrv.Addr().String(), "NATS_TLS_CA": otherCA}, "TLS failed"},
		{"no CA", map[string]string{"NATS_URL": "tls://" + tlsSrv.Addr().String()}, "TLS failed"},
		{"a name that does not resolve", map[string]string{"NATS_URL": "nats://nats.invalid:4222"}, "check the host names in NATS_URL"},
		{"nothing listening", map[string]string{"NATS_URL": fmt.Sprintf("nats://127.0.0.1:%d", closedPort(t))}, startServer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(t.Context(), []string{"setup"}, func(k string) string { return tc.env[k] }, nil, io.Discard, io.Discard)
			require.Error(t, err)
			assert.Equal(t, 2, exitCode(err), "NATS not reachable exits 2")
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), "NATS_URL", "the message names the variable")
			if tc.want != startServer {
				assert.NotContains(t, err.Error(), startServer, "a server answered")
			}
		})
	}
}
