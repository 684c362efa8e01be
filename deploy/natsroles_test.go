package deploy

import (
	"bufio"
	"context"
	"errors"
	"io"
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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/sandbox"
)

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

	t.Run("the operator finds a failure by its email (the exact-value index)", func(t *testing.T) {
		require.Equal(t, []string{"roles-later:exhausted"},
			failureKeys(t, runConsumer(t, consumer, operator, 0, "failures", "--json", "--text", "LATER@example.com")))
	})

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
		resp, found := httpGet(t, c, web+"failures?q=later2%40example.com")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Contains(t, found, "roles-later-2", "the console finds the failure by its email")
		assert.Contains(t, found, "exact value by the index", "through the exact-value index")
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

	t.Run("the operator discards by filter, as a job, and lists the jobs", func(t *testing.T) {
		ipay.Inject(sandbox.Fault{Email: "later3@example.com", Status: 503})
		publishWait(t, consumer, publisher, 1, "--command-id", "roles-later-3", "--name", "Kiran Rao",
			"--email", "later3@example.com", "--mobile", "9876543217", "--tag-id", "65a1f0c2b3d4e5f6a7b8c9d7")
		ipay.ClearFaults()
		out := runConsumer(t, consumer, operator, 0, "failures", "discard", "--reason", "exhausted")
		assert.Contains(t, out, "discarded 1 open failure", "a discard by filter runs as a job: %s", out)
		assert.Empty(t, openFailures())
		assert.Contains(t, runConsumer(t, consumer, operator, 0, "jobs"), "discard", "the operator lists the jobs")
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
