package deploy

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/contactrelay/contactrelay/internal/sandbox"
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

// TestNATSRoles runs contactrelay against deploy/nats/nats-server.conf,
// each part with its own role's nkey over TLS: the operator sets up, the
// service creates contacts, a publisher publishes and waits, the operator
// lists and replays failures, the console shows them and replays one.
// Then each role is refused, by the server, what it should not do.
func TestNATSRoles(t *testing.T) {
	s, files := startSecuredNATS(t)
	natsURL := s.ClientURL()
	require.True(t, strings.HasPrefix(natsURL, "tls://"), "the server wants TLS: %s", natsURL)
	consumer := buildConsumer(t, t.TempDir())

	ipay := sandbox.NewInstantPay(sandbox.InstantPayConfig{ClientID: "id", ClientSecret: "secret"})
	ipaySrv := httptest.NewServer(ipay)
	t.Cleanup(func() { ipay.Close(); ipaySrv.Close() })
	// No circuit: a replay right after the faults must reach the provider.
	base := append(serviceEnv(natsURL, ipaySrv.URL), "CIRCUIT_FAILURES=1000")
	env := func(role string, more ...string) []string {
		return append(slices.Clone(base), append([]string{"NATS_TLS_CA=" + files.CA, "NATS_NKEY=" + files.Seeds[role],
			"NATS_INBOX_PREFIX=" + natsInboxPrefixes[role]}, more...)...)
	}

	t.Run("no TLS, no connection", func(t *testing.T) {
		_, err := nats.Connect(s.ClientURL(), nats.Timeout(2*time.Second))
		require.Error(t, err, "a client without TLS and an nkey is refused")
	})

	runConsumer(t, consumer, env("operator"), 0, "setup", "--no-publish-check")
	// The setup Job of deploy/kubernetes runs as the service, with the
	// check that the service may publish what it must.
	runConsumer(t, consumer, env("service"), 0, "setup")
	startService(t, consumer, env("service"))

	publisher := env("publisher")
	created := publishWait(t, consumer, publisher, 0, "--command-id", "roles-created", "--name", "Asha Rao",
		"--email", "asha@example.com", "--mobile", "9876543210", "--tag-id", "65a1f0c2b3d4e5f6a7b8c9d0")
	again := publishWait(t, consumer, publisher, 0, "--command-id", "roles-created", "--name", "Asha Rao",
		"--email", "asha@example.com", "--mobile", "9876543210", "--tag-id", "65a1f0c2b3d4e5f6a7b8c9d0")
	assert.Equal(t, created.ID, again.ID, "a publisher waiting on a settled command gets its outcome (the record get)")
	ipay.Inject(sandbox.Fault{Email: "later@example.com", Status: 503})
	ipay.Inject(sandbox.Fault{Email: "later2@example.com", Status: 503})
	publishWait(t, consumer, publisher, 1, "--command-id", "roles-later", "--name", "Anil Shah",
		"--email", "later@example.com", "--mobile", "9876543214", "--tag-id", "65a1f0c2b3d4e5f6a7b8c9d4")
	publishWait(t, consumer, publisher, 1, "--command-id", "roles-later-2", "--name", "Ravi Iyer",
		"--email", "later2@example.com", "--mobile", "9876543215", "--tag-id", "65a1f0c2b3d4e5f6a7b8c9d5")
	ipay.ClearFaults()

	operator := env("operator")
	require.ElementsMatch(t, []string{"roles-later:exhausted", "roles-later-2:exhausted"},
		failureKeys(t, runConsumer(t, consumer, operator, 0, "failures", "--json")), "the operator lists the open failures")
	openFailures := func() []string { return failureKeys(t, runConsumer(t, consumer, operator, 0, "failures", "--json")) }

	t.Run("the operator replays", func(t *testing.T) {
		out := runConsumer(t, consumer, operator, 0, "replay", "--command-id", "roles-later")
		assert.Contains(t, out, "1 replayed")
		require.Eventually(t, func() bool { return slices.Equal(openFailures(), []string{"roles-later-2:exhausted"}) },
			20*time.Second, 100*time.Millisecond, "the replay created the contact and closed its failure")
	})

	t.Run("the console shows, replays, pauses and resumes, and shows the status and the activity", func(t *testing.T) {
		web := startConsole(t, consumer, env("console", "CONSOLE_ADDR=127.0.0.1:0", "CONSOLE_USER=ops", "CONSOLE_PASSWORD=correct horse"))
		jar, err := cookiejar.New(nil)
		require.NoError(t, err)
		c := &http.Client{Jar: jar, Timeout: 20 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		_, login := httpGet(t, c, web+"login")
		resp, _ := httpPost(t, c, web+"login", url.Values{"user": {"ops"}, "password": {"correct horse"}, "csrf": {csrfFrom(t, login)}})
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, "signed in")
		var page string
		require.Eventually(t, func() bool {
			var resp *http.Response
			resp, page = httpGet(t, c, web+"failures")
			return resp.StatusCode == http.StatusOK && strings.Contains(page, "roles-later-2")
		}, 20*time.Second, 100*time.Millisecond, "the failures page lists the open failure, once read")
		resp, body := httpPost(t, c, web+"replay", url.Values{"csrf": {csrfFrom(t, page)}, "command": {"roles-later-2"}, "rate": {"10"}})
		require.Less(t, resp.StatusCode, 400, "the replay starts: %s", body)
		require.Eventually(t, func() bool { return len(openFailures()) == 0 },
			20*time.Second, 100*time.Millisecond, "the console's replay created the contact and closed its failure")

		// Pause and resume (the pauses' bucket, the audit trail), the
		// service's status (a request the service answers) and the
		// activity (the audit trail read back).
		resp, page = httpGet(t, c, web+"pauses")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		for _, action := range []string{"pause", "resume"} {
			resp, body := httpPost(t, c, web+"pauses", url.Values{"csrf": {csrfFrom(t, page)}, "provider": {"instantpay"},
				"action": {action}, "reason": {"console roles test"}})
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", action, body)
			assert.Contains(t, body, "instantpay "+action+"d", action)
		}
		require.Eventually(t, func() bool {
			resp, page := httpGet(t, c, web+"status")
			return resp.StatusCode == http.StatusOK && strings.Contains(page, `<section aria-label="instance `)
		}, 10*time.Second, 100*time.Millisecond, "the status page shows the service instance's answer")
		resp, page = httpGet(t, c, web+"activity")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Contains(t, page, "console roles test", "the activity shows the console's pause")
	})
	t.Run("the operator pauses, reads the status and the audit trail, resumes", func(t *testing.T) {
		runConsumer(t, consumer, operator, 0, "pause", "--reason", "roles test", "instantpay")
		require.Eventually(t, func() bool {
			return strings.Contains(runConsumer(t, consumer, operator, 0, "status", "--json"), "roles test")
		}, 10*time.Second, 100*time.Millisecond, "the service answers the status request with the pause")
		runConsumer(t, consumer, operator, 0, "resume", "instantpay")
		audit := runConsumer(t, consumer, operator, 0, "audit", "--json")
		for _, action := range []string{"replay", "pause", "resume"} {
			assert.Contains(t, audit, `"`+action+`"`, "the audit trail has the %s", action)
		}
	})

	t.Run("the operator imports (an audited action)", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "contacts.csv")
		require.NoError(t, os.WriteFile(file, []byte("commandId,name,email,mobile,tagId\n"+
			"roles-import-1,Meera Das,meera@example.com,9876543216,65a1f0c2b3d4e5f6a7b8c9d6\n"), 0o600))
		runConsumer(t, consumer, operator, 0, "import", "--wait", file)
	})

	var emails []string
	for _, c := range ipay.Contacts() {
		emails = append(emails, c.Email)
	}
	assert.ElementsMatch(t, []string{"asha@example.com", "later@example.com", "later2@example.com", "meera@example.com"}, emails, "one contact per command")

	t.Run("the operator backs up and restores", func(t *testing.T) {
		bin := t.TempDir()
		out, err := goInstallNATSCLI(bin)
		natsCLI := natsCLIBuilt(t, bin, out, err)
		userEnv := func(f natsFiles) []string {
			return []string{"NATS_TLS_CA=" + f.CA, "NATS_NKEY=" + f.Seeds["operator"], "NATS_INBOX_PREFIX=" + natsInboxPrefixes["operator"]}
		}
		dir := filepath.Join(t.TempDir(), "backup")
		got := runScriptEnv(t, natsCLI, natsURL, userEnv(files), 0, backupScript, dir)
		assert.NotContains(t, got, "skipped", "every stream is backed up")
		// Into a fresh server of the same configuration, with keys of
		// its own.
		fresh, freshFiles := startSecuredNATS(t)
		runScriptEnv(t, natsCLI, fresh.ClientURL(), userEnv(freshFiles), 0, restoreScript, dir)
		before, after := connectRole(t, natsURL, files, "operator"), connectRole(t, fresh.ClientURL(), freshFiles, "operator")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, name := range backedUpStreams {
			a, err := before.js.Stream(ctx, name)
			require.NoError(t, err, name)
			b, err := after.js.Stream(ctx, name)
			require.NoError(t, err, "%s restored", name)
			assert.Equal(t, a.CachedInfo().State.Msgs, b.CachedInfo().State.Msgs, "%s has its messages", name)
		}
	})

	assert.Empty(t, files.Violations.String(), "no role was refused anything while doing its work")

	// What each role is refused.
	for _, tc := range []struct {
		role    string
		refused []refusal
	}{
		{"publisher", []refusal{
			deleteStream("CONTACT_COMMANDS"), deleteStream("CONTACT_EVENTS"),
			publishTo("contact.created"), publishTo("contact.failed"),
			publishTo("$KV.CONTACT_RECORDS.c-roles-created"),
			listKeys("CONTACT_RECORDS"), getBySequence("KV_CONTACT_RECORDS"),
			subscribeTo("$KV.CONTACT_RECORDS.>"),
			readStream("CONTACT_AUDIT"), subscribeTo("contactrelay.audit.>"), publishTo("contactrelay.audit.import"),
			readStream("CONTACT_FAILURES"),
			subscribeTo("_INBOX_service.>"), subscribeTo("_INBOX_console.>"), subscribeTo("_INBOX_operator.>"),
			subscribeTo("contact.create"),
		}},
		{"console", []refusal{
			publishTo("contact.created"), publishTo("contact.failed"),
			deleteStream("CONTACT_COMMANDS"), deleteStream("CONTACT_FAILURES"),
			publishTo("$KV.CONTACT_RECORDS.c-roles-created"),
			subscribeTo("contact.create"), subscribeTo("_INBOX.>"), subscribeTo("_INBOX_service.>"),
		}},
		{"service", []refusal{
			deleteStream("CONTACT_COMMANDS"), deleteStream("CONTACT_AUDIT"),
			publishTo("contactrelay.audit.replay"), publishTo("contact.create"),
			publishTo("$KV.CONTACT_CONSOLE_SESSIONS.x"),
			readStream("CONTACT_AUDIT"),
			subscribeTo("_INBOX.>"), subscribeTo("_INBOX_console.>"),
		}},
		{"operator", []refusal{
			publishTo("contact.created"), publishTo("contact.failed"),
			publishTo("$KV.CONTACT_RECORDS.c-roles-created"),
			publishTo("$KV.CONTACT_CONSOLE_SESSIONS.x"),
			subscribeTo("_INBOX.>"), subscribeTo("_INBOX_service.>"), subscribeTo("contact.create"),
		}},
	} {
		t.Run(tc.role+" is refused", func(t *testing.T) {
			rc := connectRole(t, natsURL, files, tc.role)
			for _, r := range tc.refused {
				t.Run(r.name, func(t *testing.T) { r.check(t, rc) })
			}
		})
	}

	// Nothing a refusal tried happened.
	oc := connectRole(t, natsURL, files, "operator")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, name := range []string{"CONTACT_COMMANDS", "CONTACT_EVENTS", "CONTACT_FAILURES", "CONTACT_AUDIT"} {
		_, err := oc.js.Stream(ctx, name)
		assert.NoError(t, err, "stream %s still exists", name)
	}
}

// roleConn is a connection of one role's user, with the permission
// violations the server reported on it.
type roleConn struct {
	nc         *nats.Conn
	js         jetstream.JetStream
	violations chan string
}

// connectRole connects as role, over TLS with its nkey and inbox prefix.
func connectRole(t *testing.T, natsURL string, f natsFiles, role string) *roleConn {
	t.Helper()
	rc := &roleConn{violations: make(chan string, 64)}
	nkey, err := nats.NkeyOptionFromSeed(f.Seeds[role])
	require.NoError(t, err)
	rc.nc, err = nats.Connect(natsURL, nkey, nats.RootCAs(f.CA), nats.CustomInboxPrefix(natsInboxPrefixes[role]),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				select {
				case rc.violations <- err.Error():
				default:
				}
			}
		}))
	require.NoError(t, err, "connect as %s", role)
	t.Cleanup(rc.nc.Close)
	rc.js, err = jetstream.New(rc.nc)
	require.NoError(t, err)
	return rc
}

// refused waits for the server's permission violation of kind
// ("Publish" or "Subscription") on subject.
func (rc *roleConn) refused(t *testing.T, kind, subject string) {
	t.Helper()
	// A subject ending in '.' is a prefix (a consumer's name follows).
	want := strings.ToLower("permissions violation for " + kind + " to \"" + subject)
	if !strings.HasSuffix(subject, ".") {
		want += "\""
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case v := <-rc.violations:
			if strings.Contains(strings.ToLower(v), want) {
				return
			}
		case <-timeout:
			t.Fatalf("the server reported no permissions violation for %s to %q", kind, subject)
		}
	}
}

// refusal is one thing a role must not do, and its check: the attempt
// fails and the server reports the violation.
type refusal struct {
	name  string
	check func(t *testing.T, rc *roleConn)
}

// apiCtx bounds a refused JetStream request, which gets no answer; the
// refusal itself is the server's violation, which refused waits for.
func apiCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	t.Cleanup(cancel)
	return ctx
}

func deleteStream(name string) refusal {
	return refusal{"delete stream " + name, func(t *testing.T, rc *roleConn) {
		assert.Error(t, rc.js.DeleteStream(apiCtx(t), name), "delete %s", name)
		rc.refused(t, "Publish", "$JS.API.STREAM.DELETE."+name)
	}}
}

func publishTo(subject string) refusal {
	return refusal{"publish " + subject, func(t *testing.T, rc *roleConn) {
		require.NoError(t, rc.nc.Publish(subject, []byte("{}")))
		require.NoError(t, rc.nc.Flush())
		rc.refused(t, "Publish", subject)
	}}
}

func subscribeTo(subject string) refusal {
	return refusal{"subscribe " + subject, func(t *testing.T, rc *roleConn) {
		sub, err := rc.nc.SubscribeSync(subject)
		require.NoError(t, err)
		defer func() { _ = sub.Unsubscribe() }()
		require.NoError(t, rc.nc.Flush())
		rc.refused(t, "Subscription", subject)
	}}
}

// listKeys lists a bucket's keys: a consumer on its stream.
func listKeys(bucket string) refusal {
	return refusal{"list the keys of " + bucket, func(t *testing.T, rc *roleConn) {
		_, err := rc.js.CreateOrUpdateConsumer(apiCtx(t), "KV_"+bucket, jetstream.ConsumerConfig{})
		assert.Error(t, err)
		rc.refused(t, "Publish", "$JS.API.CONSUMER.CREATE.KV_"+bucket+".")
	}}
}

// readStream reads a stream with a consumer of its own.
func readStream(stream string) refusal {
	return refusal{"read stream " + stream, func(t *testing.T, rc *roleConn) {
		_, err := rc.js.CreateOrUpdateConsumer(apiCtx(t), stream, jetstream.ConsumerConfig{})
		assert.Error(t, err)
		rc.refused(t, "Publish", "$JS.API.CONSUMER.CREATE."+stream+".")
	}}
}

// getBySequence reads a stream's messages one by one, by sequence, with
// direct gets (no key needed).
func getBySequence(stream string) refusal {
	return refusal{"get " + stream + " by sequence", func(t *testing.T, rc *roleConn) {
		_, err := rc.nc.Request("$JS.API.DIRECT.GET."+stream, []byte(`{"seq":1}`), 500*time.Millisecond)
		assert.Error(t, err)
		rc.refused(t, "Publish", "$JS.API.DIRECT.GET."+stream)
	}}
}

// buildConsumer builds the consumer into dir.
func buildConsumer(t *testing.T, dir string) string {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "consumer"), "./cmd/consumer")
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build ./cmd/consumer: %s", out)
	return filepath.Join(dir, "consumer")
}

var consoleURL = regexp.MustCompile(`url=(http://\S+/)`)

// startConsole starts `consumer console` and returns its URL, from its
// log; it is stopped at cleanup.
func startConsole(t *testing.T, consumer string, env []string) string {
	t.Helper()
	cmd := exec.Command(consumer, "console")
	cmd.Env = env
	out, err := cmd.StderrPipe()
	require.NoError(t, err)
	cmd.Stdout = cmd.Stderr
	require.NoError(t, cmd.Start())
	var mu sync.Mutex
	var logs strings.Builder
	found := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			mu.Lock()
			logs.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if m := consoleURL.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
		_ = cmd.Wait()
		if t.Failed() {
			mu.Lock()
			t.Logf("consumer console's log:\n%s", logs.String())
			mu.Unlock()
		}
	})
	select {
	case u := <-found:
		return u
	case <-done:
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("consumer console stopped: %s", logs.String())
	case <-time.After(30 * time.Second):
		t.Fatal("consumer console did not start within 30s")
	}
	return ""
}

func httpGet(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func httpPost(t *testing.T, c *http.Client, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfFrom(t *testing.T, page string) string {
	t.Helper()
	m := csrfInput.FindStringSubmatch(page)
	require.NotNil(t, m, "the page has a CSRF field")
	return m[1]
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

// natsUser is one user of deploy/nats as the test compares them: its
// account and its permissions.
type natsUser struct {
	Account                 string
	PublishAllow, PubDeny   []string
	SubscribeAllow, SubDeny []string
	AllowResponses          bool
}

// helmNATSAccounts is the part of deploy/nats/values.yaml holding the
// accounts, as the chart merges it into the server's configuration.
type helmNATSAccounts struct {
	Config struct {
		Nats struct {
			TLS struct {
				Enabled    bool   `yaml:"enabled"`
				SecretName string `yaml:"secretName"`
			} `yaml:"tls"`
		} `yaml:"nats"`
		Cluster struct {
			TLS struct {
				Enabled    bool   `yaml:"enabled"`
				SecretName string `yaml:"secretName"`
				Merge      struct {
					Verify bool   `yaml:"verify"`
					CAFile string `yaml:"ca_file"`
				} `yaml:"merge"`
			} `yaml:"tls"`
		} `yaml:"cluster"`
		Merge struct {
			SystemAccount string `yaml:"system_account"`
			Accounts      map[string]struct {
				JetStream string `yaml:"jetstream"`
				Users     []struct {
					Nkey        string `yaml:"nkey"`
					Permissions *struct {
						Publish        helmSubjects `yaml:"publish"`
						Subscribe      helmSubjects `yaml:"subscribe"`
						AllowResponses bool         `yaml:"allow_responses"`
					} `yaml:"permissions"`
				} `yaml:"users"`
			} `yaml:"accounts"`
		} `yaml:"merge"`
	} `yaml:"config"`
	Container struct {
		// A value is a string or a valueFrom.
		Env map[string]yaml.Node `yaml:"env"`
	} `yaml:"container"`
}

type helmSubjects struct {
	Allow []string `yaml:"allow"`
	Deny  []string `yaml:"deny"`
}

var helmVariable = regexp.MustCompile(`^<< \$([A-Z][A-Z0-9_]*) >>$`)

// TestNATSHelmValuesAgree: the Helm values render the accounts, users and
// permissions of nats-server.conf, user for user, each user's public nkey
// from the same variable, which the chart's container takes from a Secret;
// both require TLS; KEDA reads the account the users are in.
func TestNATSHelmValuesAgree(t *testing.T) {
	opts := loadNATSConf(t, prepareSecuredNATS(t))
	byKey := map[string]string{} // public nkey → its variable
	for _, env := range natsRoleKeys {
		byKey[os.Getenv(env)] = env
	}
	conf := map[string]natsUser{}
	for _, u := range opts.Nkeys {
		env, ok := byKey[u.Nkey]
		require.True(t, ok, "nats-server.conf has a user whose nkey is none of %v", natsRoleKeys)
		nu := natsUser{Account: u.Account.Name}
		if p := u.Permissions; p != nil {
			if p.Publish != nil {
				nu.PublishAllow, nu.PubDeny = p.Publish.Allow, p.Publish.Deny
			}
			if p.Subscribe != nil {
				nu.SubscribeAllow, nu.SubDeny = p.Subscribe.Allow, p.Subscribe.Deny
			}
			nu.AllowResponses = p.Response != nil
		}
		conf[env] = nu
	}
	assert.Len(t, conf, len(natsRoleKeys), "nats-server.conf has a user per role and the system user")
	assert.Empty(t, opts.Users, "nats-server.conf has no password users")

	var v helmNATSAccounts
	decodeFile(t, helmValues, &v)
	helm := map[string]natsUser{}
	for account, a := range v.Config.Merge.Accounts {
		for _, u := range a.Users {
			m := helmVariable.FindStringSubmatch(u.Nkey)
			require.NotNil(t, m, "values.yaml: user nkey %q is not a variable << $X >>", u.Nkey)
			nu := natsUser{Account: account}
			if p := u.Permissions; p != nil {
				nu.PublishAllow, nu.PubDeny = p.Publish.Allow, p.Publish.Deny
				nu.SubscribeAllow, nu.SubDeny = p.Subscribe.Allow, p.Subscribe.Deny
				nu.AllowResponses = p.AllowResponses
			}
			helm[m[1]] = nu
			var ref struct {
				ValueFrom struct {
					SecretKeyRef struct{ Name, Key string } `yaml:"secretKeyRef"`
				} `yaml:"valueFrom"`
			}
			env := v.Container.Env[m[1]]
			require.NoError(t, env.Decode(&ref), "values.yaml: container.env.%s is a valueFrom", m[1])
			assert.Equal(t, "nats-users", ref.ValueFrom.SecretKeyRef.Name, "values.yaml: %s comes from the Secret nats-users", m[1])
			assert.Equal(t, m[1], ref.ValueFrom.SecretKeyRef.Key, "values.yaml: %s is its own key in the Secret", m[1])
		}
	}
	assert.Equal(t, conf, helm, "values.yaml's users and permissions are nats-server.conf's (variable → account and permissions)")
	assert.Equal(t, opts.SystemAccount, v.Config.Merge.SystemAccount, "the system account")
	account := conf[natsRoleKeys["service"]].Account
	assert.Equal(t, "enabled", v.Config.Merge.Accounts[account].JetStream, "values.yaml: JetStream in %s", account)

	assert.NotNil(t, opts.TLSConfig, "nats-server.conf requires TLS")
	assert.True(t, v.Config.Nats.TLS.Enabled, "values.yaml requires TLS")
	assert.NotEmpty(t, v.Config.Nats.TLS.SecretName, "values.yaml names the TLS Secret")
	require.NotNil(t, opts.Cluster.TLSConfig, "nats-server.conf: routes speak TLS")
	assert.Equal(t, tls.RequireAndVerifyClientCert, opts.Cluster.TLSConfig.ClientAuth, "nats-server.conf: a route proves itself (verify)")
	assert.True(t, v.Config.Cluster.TLS.Enabled, "values.yaml: routes speak TLS")
	assert.Equal(t, v.Config.Nats.TLS.SecretName, v.Config.Cluster.TLS.SecretName, "values.yaml: the routes' certificate is the servers'")
	assert.True(t, v.Config.Cluster.TLS.Merge.Verify, "values.yaml: a route proves itself (verify)")
	assert.NotEmpty(t, v.Config.Cluster.TLS.Merge.CAFile, "values.yaml: the CA routes are checked with")

	m := loadManifests(t)
	require.Len(t, m.scaledObject.Spec.Triggers, 1)
	assert.Equal(t, account, m.scaledObject.Spec.Triggers[0].Metadata["account"], "KEDA reads the consumer of the account the users are in")
}

// TestNATSNetworkPolicy: deploy/nats/networkpolicy.yaml lets clients reach
// NATS from any namespace (TLS and the users decide the rest), the routes
// only from the servers, and the monitoring port, which has no sign-in,
// only from KEDA's and Prometheus's namespaces.
func TestNATSNetworkPolicy(t *testing.T) {
	var p networkPolicy
	decodeFile(t, "nats/networkpolicy.yaml", &p)
	var values helmValuesConfig
	decodeFile(t, helmValues, &values)
	require.Equal(t, "NetworkPolicy", p.Kind)
	assert.Equal(t, "nats", p.Metadata.Namespace, "the namespace of the release nats")
	assert.Equal(t, natsPods, p.Spec.PodSelector.MatchLabels, "the NATS servers' pods")
	assert.Contains(t, p.Spec.PolicyTypes, "Ingress")

	byPort := map[int][]policyPeer{}
	for _, r := range p.Spec.Ingress {
		require.NotEmpty(t, r.Ports, "a rule without ports opens every port")
		require.NotEmpty(t, r.From, "a rule without peers lets everyone in")
		for _, port := range r.Ports {
			n, ok := port.Port.(int)
			require.True(t, ok, "port %v is a number", port.Port)
			byPort[n] = append(byPort[n], r.From...)
		}
	}
	monitor := values.Config.Monitor.Port
	assert.ElementsMatch(t, []int{4222, 6222, monitor}, slices.Collect(maps.Keys(byPort)), "clients, routes and monitoring only")

	t.Run("clients from every namespace", func(t *testing.T) {
		require.Len(t, byPort[4222], 1)
		peer := byPort[4222][0]
		require.NotNil(t, peer.NamespaceSelector)
		assert.Empty(t, peer.NamespaceSelector.MatchLabels, "every namespace")
		assert.Nil(t, peer.PodSelector)
	})
	t.Run("routes from the servers only", func(t *testing.T) {
		for _, peer := range byPort[6222] {
			assert.Nil(t, peer.NamespaceSelector, "the policy's own namespace")
			require.NotNil(t, peer.PodSelector)
			assert.Equal(t, natsPods, peer.PodSelector.MatchLabels)
		}
	})
	t.Run("monitoring from KEDA and Prometheus only", func(t *testing.T) {
		var namespaces []string
		for _, peer := range byPort[monitor] {
			assert.Nil(t, peer.PodSelector)
			assert.Nil(t, peer.IPBlock)
			require.NotNil(t, peer.NamespaceSelector, "a namespace, never every pod")
			name := peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"]
			require.NotEmpty(t, name, "a namespace by name, never every namespace")
			namespaces = append(namespaces, name)
		}
		assert.ElementsMatch(t, []string{"keda", "monitoring"}, namespaces)
	})
}

// TestNATSRolesOfThePods: each pod of deploy/kubernetes connects as its
// role of deploy/nats: over TLS (tls:// and the CA), with a seed from its
// own Secret, and the inbox prefix its user may subscribe to; the
// configuration lets each role read its own prefix's replies and no other
// role's.
func TestNATSRolesOfThePods(t *testing.T) {
	opts := loadNATSConf(t, prepareSecuredNATS(t))
	subscribe := map[string][]string{} // role → subscribe allow
	for role, env := range natsRoleKeys {
		for _, u := range opts.Nkeys {
			if u.Nkey == os.Getenv(env) && u.Permissions != nil && u.Permissions.Subscribe != nil {
				subscribe[role] = u.Permissions.Subscribe.Allow
			}
		}
	}
	for role, prefix := range natsInboxPrefixes {
		assert.Contains(t, subscribe[role], prefix+".>", "%s may read its replies", role)
		for other, theirs := range natsInboxPrefixes {
			if other != role {
				assert.NotContains(t, subscribe[role], theirs+".>", "%s may not read %s's replies", role, other)
			}
		}
	}

	m := loadManifests(t)
	envOf := func(c container, name string) (string, bool) {
		for _, e := range c.Env {
			if e.Name == name {
				return e.Value, e.ValueFrom != nil
			}
		}
		return "", false
	}
	assert.True(t, strings.HasPrefix(m.configMap.Data["NATS_URL"], "tls://"), "NATS_URL says TLS")
	assert.NotEmpty(t, m.configMap.Data["NATS_TLS_CA"], "the CA the servers' certificate is checked with")
	assert.Equal(t, natsInboxPrefixes["service"], m.configMap.Data["NATS_INBOX_PREFIX"], "the service's (and the setup Job's) prefix")

	for _, tc := range []struct {
		name   string
		c      container
		prefix string // "" for the ConfigMap's
	}{
		{"service", m.deployment.Spec.Template.Spec.Containers[0], ""},
		{"setup Job", m.job.Spec.Template.Spec.Containers[0], ""},
		{"console", m.console.Spec.Template.Spec.Containers[0], natsInboxPrefixes["console"]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seed, _ := envOf(tc.c, "NATS_NKEY_FILE")
			assert.NotEmpty(t, seed, "its user's seed, from its Secret")
			if tc.prefix != "" {
				got, _ := envOf(tc.c, "NATS_INBOX_PREFIX")
				assert.Equal(t, tc.prefix, got)
			}
		})
	}
}

// TestNATSRoutes: two servers of nats-server.conf (the same certificates)
// form a route over TLS; a server whose certificate the CA did not sign is
// refused, the refusal logged by the cluster's server.
func TestNATSRoutes(t *testing.T) {
	f := prepareSecuredNATS(t)
	start := func(name string, routes []*url.URL, log server.Logger, trustAnyone bool) *server.Server {
		t.Helper()
		opts := loadNATSConf(t, f)
		require.NotNil(t, opts.Cluster.TLSConfig, "routes speak TLS")
		if trustAnyone {
			// A stranger that trusts any server: only the cluster's own
			// check of the stranger's certificate (verify) keeps it out.
			// Its route address leads nowhere, so that nats-a's only TLS
			// errors are its checks of the stranger's connections.
			opts.Cluster.TLSConfig.InsecureSkipVerify = true
			opts.Cluster.Advertise = "127.0.0.1:1"
		}
		opts.ServerName, opts.Host, opts.Port, opts.HTTPPort = name, "127.0.0.1", -1, 0
		opts.Cluster.Host, opts.Cluster.Port, opts.Routes = "127.0.0.1", -1, routes
		// Routes only: a JetStream cluster of two would wait for its
		// third server's vote.
		opts.JetStream = false
		opts.NoSigs = true
		s, err := server.NewServer(opts)
		require.NoError(t, err)
		if log != nil {
			s.SetLoggerV2(log, true, false, false) // a route's TLS error may be logged at debug level
		}
		s.Start()
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		require.True(t, s.ReadyForConnections(10*time.Second), "%s did not start", name)
		return s
	}
	seen := &lineLog{want: "TLS route handshake error: tls: failed to verify certificate"}
	a := start("nats-a", nil, seen, false)
	routeURL, err := url.Parse(fmt.Sprintf("nats-route://127.0.0.1:%d", a.ClusterAddr().Port))
	require.NoError(t, err)
	b := start("nats-b", []*url.URL{routeURL}, nil, false)
	require.Eventually(t, func() bool { return a.NumRoutes() > 0 && b.NumRoutes() > 0 }, 10*time.Second, 20*time.Millisecond,
		"the two servers form a route over TLS")

	// A stranger: its own CA's certificate, in the same configuration.
	stranger := t.TempDir()
	writeCertificates(t, stranger)
	for _, name := range []string{"tls.crt", "tls.key", "ca.crt"} {
		b, err := os.ReadFile(filepath.Join(stranger, name))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(f.Dir, name), b, 0o600))
	}
	s := start("nats-stranger", []*url.URL{routeURL}, nil, true)
	require.Eventually(t, seen.found, 10*time.Second, 20*time.Millisecond,
		"nats-a refuses the stranger's route: its certificate is not the cluster CA's (verify)")
	// (A route to a peer may be several connections, a pool: count the
	// stranger's, not nats-a's.)
	assert.Zero(t, s.NumRoutes(), "no route to the stranger")
}

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
