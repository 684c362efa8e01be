package deploy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/require"
)

// The secured NATS of deploy/nats: nats-server.conf names its TLS files
// at the Helm chart's mount path and reads the users' public nkeys from
// its environment (natsRoleKeys). A test gives it certificates and keys
// of its own: it writes a copy of the file with only these paths changed,
// into a folder of its own.
const (
	natsCertDir  = "/etc/nats-certs/nats/"
	natsStoreDir = "/var/lib/nats/jetstream"
)

// natsRoleKeys are the variables of nats-server.conf holding each user's
// public nkey, by role; "system" is the system account's user.
var natsRoleKeys = map[string]string{
	"service":   "CONTACTRELAY_SERVICE_NKEY",
	"console":   "CONTACTRELAY_CONSOLE_NKEY",
	"publisher": "CONTACTRELAY_PUBLISHER_NKEY",
	"operator":  "CONTACTRELAY_OPERATOR_NKEY",
	"system":    "NATS_SYSTEM_NKEY",
}

// natsInboxPrefixes are the reply prefixes each role's user may
// subscribe to (NATS_INBOX_PREFIX), as nats-server.conf grants them.
var natsInboxPrefixes = map[string]string{
	"service":   "_INBOX_service",
	"console":   "_INBOX_console",
	"publisher": "_INBOX",
	"operator":  "_INBOX_operator",
}

// natsFiles are the files a test's secured NATS reads and its clients
// use: the CA certificate, and each role's nkey seed file.
type natsFiles struct {
	Dir   string
	CA    string
	Seeds map[string]string // role → seed file
	Conf  string            // the copy of nats-server.conf
	// Violations are the permissions violations the server logged
	// (startSecuredNATS).
	Violations *violationLog
}

// prepareSecuredNATS generates a CA, a server certificate for 127.0.0.1
// and localhost, and an nkey per role; sets the variables nats-server.conf
// reads the public keys from; and writes the copy of the file with its
// TLS and store paths in a folder of the test's.
func prepareSecuredNATS(t *testing.T) natsFiles {
	t.Helper()
	dir := t.TempDir()
	f := natsFiles{Dir: dir, CA: filepath.Join(dir, "ca.crt"), Seeds: map[string]string{}}
	writeCertificates(t, dir)
	for role, env := range natsRoleKeys {
		kp, err := nkeys.CreateUser()
		require.NoError(t, err)
		pub, err := kp.PublicKey()
		require.NoError(t, err)
		seed, err := kp.Seed()
		require.NoError(t, err)
		f.Seeds[role] = filepath.Join(dir, role+".nk")
		require.NoError(t, os.WriteFile(f.Seeds[role], seed, 0o600))
		t.Setenv(env, pub)
	}
	b, err := os.ReadFile(natsConf)
	require.NoError(t, err)
	conf := string(b)
	require.Equal(t, 5, strings.Count(conf, natsCertDir),
		"nats-server.conf names the certificate and its key (clients), and them and the CA (routes) under %s", natsCertDir)
	require.Equal(t, 1, strings.Count(conf, natsStoreDir), "nats-server.conf stores JetStream in %s", natsStoreDir)
	conf = strings.ReplaceAll(conf, natsCertDir, dir+"/")
	conf = strings.ReplaceAll(conf, natsStoreDir, filepath.Join(dir, "jetstream"))
	f.Conf = filepath.Join(dir, "nats-server.conf")
	require.NoError(t, os.WriteFile(f.Conf, []byte(conf), 0o600))
	return f
}

// loadNATSConf parses the test's copy of nats-server.conf as nats-server
// does.
func loadNATSConf(t *testing.T, f natsFiles) *server.Options {
	t.Helper()
	opts, err := server.ProcessConfigFile(f.Conf)
	require.NoError(t, err, "nats-server rejects %s", natsConf)
	return opts
}

// startSecuredNATS starts one server of deploy/nats/nats-server.conf on
// a random loopback port, without its cluster (one node has no quorum
// alone) or monitoring port.
func startSecuredNATS(t *testing.T) (*server.Server, natsFiles) {
	t.Helper()
	f := prepareSecuredNATS(t)
	opts := loadNATSConf(t, f)
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
	opts.Cluster, opts.Routes = server.ClusterOpts{}, nil
	opts.NoSigs = true
	s, err := server.NewServer(opts)
	require.NoError(t, err)
	log := &violationLog{}
	f.Violations = log
	s.SetLoggerV2(log, false, false, false)
	s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
		if t.Failed() {
			t.Logf("nats-server's permissions violations:\n%s", log.String())
		}
	})
	require.True(t, s.ReadyForConnections(10*time.Second), "nats-server did not start")
	return s, f
}

// writeCertificates writes a CA (ca.crt) and a server certificate it
// signed for 127.0.0.1 and localhost (tls.crt, tls.key) into dir, the
// names of the Helm chart's TLS Secret.
func writeCertificates(t *testing.T, dir string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "contactrelay test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "nats"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// Routes: each server is the other's client too.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:    []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	for name, block := range map[string]*pem.Block{
		"ca.crt":  {Type: "CERTIFICATE", Bytes: caDER},
		"tls.crt": {Type: "CERTIFICATE", Bytes: der},
		"tls.key": {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600))
	}
}

// violationLog keeps the permissions violations a server logs, for a
// failed test's report.
type violationLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *violationLog) keep(format string, v ...any) {
	line := fmt.Sprintf(format, v...)
	if !strings.Contains(line, "Violation") {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) < 200 {
		l.lines = append(l.lines, line)
	}
}

func (l *violationLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func (l *violationLog) Noticef(format string, v ...any) { l.keep(format, v...) }
func (l *violationLog) Warnf(format string, v ...any)   { l.keep(format, v...) }
func (l *violationLog) Fatalf(format string, v ...any)  { l.keep(format, v...) }
func (l *violationLog) Errorf(format string, v ...any)  { l.keep(format, v...) }
func (l *violationLog) Debugf(format string, v ...any)  { l.keep(format, v...) }
func (l *violationLog) Tracef(format string, v ...any)  { l.keep(format, v...) }

// lineLog notes whether a server logged a line holding want.
type lineLog struct {
	want string
	mu   sync.Mutex
	seen bool
}

func (l *lineLog) keep(format string, v ...any) {
	if strings.Contains(fmt.Sprintf(format, v...), l.want) {
		l.mu.Lock()
		l.seen = true
		l.mu.Unlock()
	}
}

func (l *lineLog) found() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen
}

func (l *lineLog) Noticef(format string, v ...any) { l.keep(format, v...) }
func (l *lineLog) Warnf(format string, v ...any)   { l.keep(format, v...) }
func (l *lineLog) Fatalf(format string, v ...any)  { l.keep(format, v...) }
func (l *lineLog) Errorf(format string, v ...any)  { l.keep(format, v...) }
func (l *lineLog) Debugf(format string, v ...any)  { l.keep(format, v...) }
func (l *lineLog) Tracef(format string, v ...any)  { l.keep(format, v...) }
