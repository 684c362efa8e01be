package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/natstest"
)

// certFiles writes a CA, and a certificate and key signed by it for cn
// (valid for 127.0.0.1), and returns their paths.
type certFiles struct{ ca, cert, key string }

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	return ca, key, path
}

func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, caPath, cn string, serial int64) certFiles {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	f := certFiles{ca: caPath, cert: filepath.Join(dir, cn+".pem"), key: filepath.Join(dir, cn+"-key.pem")}
	require.NoError(t, os.WriteFile(f.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(f.key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	return f
}

func TestNATSWithTLSAndNkey(t *testing.T) {
	ca, caKey, caPath := newCA(t)
	srvCert := issue(t, ca, caKey, caPath, "server", 2)
	cliCert := issue(t, ca, caKey, caPath, "client", 3)
	user, err := nkeys.CreateUser()
	require.NoError(t, err)
	pub, err := user.PublicKey()
	require.NoError(t, err)
	seed, err := user.Seed()
	require.NoError(t, err)
	seedPath := filepath.Join(t.TempDir(), "user.nk")
	require.NoError(t, os.WriteFile(seedPath, seed, 0o600))

	srv := natstest.Start(t, func(o *server.Options) {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: srvCert.cert, KeyFile: srvCert.key, CaFile: caPath, Verify: true})
		require.NoError(t, err)
		o.TLSConfig, o.TLS, o.TLSVerify = tc, true, true
		o.Nkeys = []*server.NkeyUser{{Nkey: pub}}
	})
	env := map[string]string{
		"NATS_URL":      "tls://" + srv.Addr().String(),
		"NATS_TLS_CA":   caPath,
		"NATS_TLS_CERT": cliCert.cert,
		"NATS_TLS_KEY":  cliCert.key,
		"NATS_NKEY":     seedPath,
	}
	getenv := func(k string) string { return env[k] }
	require.NoError(t, run(t.Context(), []string{"setup"}, getenv, nil, io.Discard, io.Discard),
		"setup connects with TLS, a client certificate and an nkey")

	delete(env, "NATS_NKEY")
	err = run(t.Context(), []string{"setup"}, getenv, nil, io.Discard, io.Discard)
	require.Error(t, err, "without the nkey the server refuses")
	assert.NotContains(t, err.Error(), string(seed), "the seed never shows in an error")

	env["NATS_NKEY"] = seedPath
	delete(env, "NATS_TLS_CERT")
	delete(env, "NATS_TLS_KEY")
	assert.Error(t, run(t.Context(), []string{"setup"}, getenv, nil, io.Discard, io.Discard),
		"without a client certificate the server refuses")
}
