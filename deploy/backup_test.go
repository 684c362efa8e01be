package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/sandbox"
)

// natsCLIPackage is the nats CLI the runbooks and deploy/backup use, pinned
// to the release built against this module's nats-server and nats.go.
// docs/BACKUP.md and docs/OPERATIONS.md give the same go install line
// (TestRunbooksPinTheNATSCLI).
const natsCLIPackage = "github.com/nats-io/natscli/nats@v0.5.1"

// The streams deploy/backup/backup.sh backs up, as the contract names them.
var backedUpStreams = []string{"CONTACT_COMMANDS", "CONTACT_EVENTS", "CONTACT_FAILURES", "KV_CONTACT_RECORDS", "CONTACT_AUDIT", "KV_CONTACT_PAUSES", "KV_CONTACT_CONSOLE_SESSIONS", "KV_CONTACT_JOBS"}

const (
	backupScript  = "backup/backup.sh"
	restoreScript = "backup/restore.sh"
)

func TestRunbooksPinTheNATSCLI(t *testing.T) {
	for _, doc := range []string{"../docs/BACKUP.md", "../docs/OPERATIONS.md", "README.md"} {
		t.Run(doc, func(t *testing.T) {
			b, err := os.ReadFile(doc)
			require.NoError(t, err)
			assert.Contains(t, string(b), "go install "+natsCLIPackage, "%s: give the pinned go install line", doc)
		})
	}
}

// TestBackupAndRestore backs up a store with open failures and records
// with deploy/backup/backup.sh while the service runs, restores it with
// restore.sh into a fresh server, and shows that what the backup held
// still works: the same open failures, a replay that creates the contact,
// and a re-sent command answered from its restored record without a
// second create call.
func TestBackupAndRestore(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash to run the scripts")
	}
	bin := t.TempDir()
	natsCLI, consumer := buildTools(t, bin)

	ipay := sandbox.NewInstantPay(sandbox.InstantPayConfig{ClientID: "id", ClientSecret: "secret"})
	ipaySrv := httptest.NewServer(ipay)
	t.Cleanup(func() { ipay.Close(); ipaySrv.Close() })

	// The store to back up.
	before := startJetStream(t)
	env := serviceEnv(before.ClientURL(), ipaySrv.URL)
	runConsumer(t, consumer, env, 0, "setup")
	stop := startService(t, consumer, env)

	created := publishWait(t, consumer, env, 0, "--command-id", "bk-created-1", "--name", "Asha Rao",
		"--email", "asha@example.com", "--mobile", "9876543210", "--tag-id", "65a1f0c2b3d4e5f6a7b8c9d0")
	publishWait(t, consumer, env, 0, "--command-id", "bk-created-2", "--name", "Ravi Iyer",
		"--email", "ravi@example.com", "--mobile", "9876543211", "--tag-id", "65a1f0c2b3d4e5f6a7b8c9d1")
	publishWait(t, consumer, env, 1, "--command-id", "bk-invalid", "--name", "Meera Das",
		"--email", "not-an-email", "--mobile", "9876543212", "--tag-id", "65a1f0c2b3d4e5f6a7b8c9d2", "--no-validate")
	ipay.Inject(sandbox.Fault{Email: "refused@example.com", Code: "RPI", Message: "SANDBOX: invalid parameter"})
	publishWait(t, consumer, env, 1, "--command-id", "bk-rejected", "--name", "Kiran Rao",
		"--email", "refused@example.com", "--mobile", "9876543213", "--tag-id", "65a1f0c2b3d4e5f6a7b8c9d3")
	ipay.ClearFaults()
	ipay.Inject(sandbox.Fault{Email: "later@example.com", Status: 503})
	exhausted := publishWait(t, consumer, env, 1, "--command-id", "bk-later", "--name", "Anil Shah",
		"--email", "later@example.com", "--mobile", "9876543214", "--tag-id", "65a1f0c2b3d4e5f6a7b8c9d4")
	ipay.ClearFaults()
	require.Len(t, ipay.Contacts(), 2, "two contacts created before the backup")

	openBefore := runConsumer(t, consumer, env, 0, "failures", "--json")
	require.ElementsMatch(t, []string{"bk-invalid:invalid", "bk-rejected:rejected", "bk-later:exhausted"},
		failureKeys(t, openBefore), "the open failures before the backup")

	// The backup, taken while the service runs.
	dir := filepath.Join(t.TempDir(), "backup")
	out := runScript(t, natsCLI, before.ClientURL(), 0, backupScript, dir)
	assert.NotContains(t, out, "skipped", "setup made every stream, the audit's too")
	for _, s := range backedUpStreams {
		assert.FileExists(t, filepath.Join(dir, s, "backup.json"), "%s is backed up", s)
	}
	countsBefore := streamCounts(t, before)
	stop()
	before.Shutdown()
	before.WaitForShutdown()

	// A fresh server, restored.
	after := startJetStream(t)
	runScript(t, natsCLI, after.ClientURL(), 0, restoreScript, dir)
	assert.Equal(t, countsBefore, streamCounts(t, after), "every stream has the messages and the durable consumer it had")
	out = runScript(t, natsCLI, after.ClientURL(), 1, restoreScript, dir)
	assert.Contains(t, out, "exists already", "a second restore leaves the restored streams alone")

	env = serviceEnv(after.ClientURL(), ipaySrv.URL)
	openAfter := runConsumer(t, consumer, env, 0, "failures", "--json")
	assert.Equal(t, openBefore, openAfter, "consumer failures lists the same open failures, line for line")

	runConsumer(t, consumer, env, 0, "setup")
	startService(t, consumer, env)
	nc, err := nats.Connect(after.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	outcomes := make(chan *nats.Msg, 16)
	sub, err := nc.ChanSubscribe("contact.>", outcomes)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	require.NoError(t, nc.Flush())

	t.Run("a re-sent created command is still a duplicate", func(t *testing.T) {
		calls := ipay.CreateCalls()
		// Not the Nats-Msg-Id it was first sent with, so that the command
		// stream stores it and the service answers it from its record.
		msg := nats.NewMsg("contact.create")
		msg.Header.Set("Nats-Msg-Id", "bk-created-1/re-sent after the restore")
		msg.Data = []byte(`{"commandId":"bk-created-1","name":"Asha Rao",` +
			`"email":"asha@example.com","mobile":"9876543210","tagId":"65a1f0c2b3d4e5f6a7b8c9d0"}`)
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ack, err := js.PublishMsg(ctx, msg)
		require.NoError(t, err)
		require.False(t, ack.Duplicate, "the command stream stores the re-sent command")

		got := awaitOutcome(t, outcomes, "bk-created-1")
		assert.Equal(t, "contact.created", got.Type)
		assert.Equal(t, created.ID, got.ID, "the same event id as the first answer")
		assert.Equal(t, created.Data["contactId"], got.Data["contactId"], "the same contact")
		assert.Equal(t, calls, ipay.CreateCalls(), "no second create call at the provider")

		// And as a publisher sees it.
		again := publishWait(t, consumer, env, 0, "--command-id", "bk-created-1", "--name", "Asha Rao",
			"--email", "asha@example.com", "--mobile", "9876543210", "--tag-id", "65a1f0c2b3d4e5f6a7b8c9d0")
		assert.Equal(t, created.ID, again.ID, "publish --wait answers with the first contact.created")
		assert.Equal(t, calls, ipay.CreateCalls(), "no create call for publish --wait either")
	})

	t.Run("a replay of the exhausted failure creates the contact", func(t *testing.T) {
		calls := ipay.CreateCalls()
		out := runConsumer(t, consumer, env, 0, "replay", "--command-id", "bk-later")
		assert.Contains(t, out, "1 replayed", "replay's summary")
		got := awaitOutcome(t, outcomes, "bk-later")
		assert.Equal(t, "contact.created", got.Type)
		assert.Equal(t, exhausted.ID, got.Data["replayOf"], "the outcome of the replay of the failed event")
		assert.Equal(t, calls+1, ipay.CreateCalls(), "one create call")
		var emails []string
		for _, c := range ipay.Contacts() {
			emails = append(emails, c.Email)
		}
		assert.Contains(t, emails, "later@example.com")
		require.Eventually(t, func() bool {
			keys := failureKeys(t, runConsumer(t, consumer, env, 0, "failures", "--json"))
			return slices.Equal(keys, []string{"bk-invalid:invalid", "bk-rejected:rejected"}) ||
				slices.Equal(keys, []string{"bk-rejected:rejected", "bk-invalid:invalid"})
		}, 10*time.Second, 100*time.Millisecond, "the replayed failure leaves the open failures; the others stay")
	})
}

// buildTools builds the nats CLI (go install, pinned) and the consumer
// into dir, at once. Without the module proxy (and the module not in the
// module cache) the test is skipped, except in CI, where it fails.
func buildTools(t *testing.T, dir string) (natsCLI, consumer string) {
	t.Helper()
	var wg sync.WaitGroup
	var installOut, buildOut []byte
	var installErr, buildErr error
	wg.Go(func() { installOut, installErr = goInstallNATSCLI(dir) })
	wg.Go(func() {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "consumer"), "./cmd/consumer")
		cmd.Dir = ".."
		buildOut, buildErr = cmd.CombinedOutput()
	})
	wg.Wait()
	require.NoError(t, buildErr, "go build ./cmd/consumer: %s", buildOut)
	return natsCLIBuilt(t, dir, installOut, installErr), filepath.Join(dir, "consumer")
}

// goInstallNATSCLI installs the pinned nats CLI into dir.
func goInstallNATSCLI(dir string) ([]byte, error) {
	cmd := exec.Command("go", "install", natsCLIPackage)
	cmd.Dir = dir // outside this module: the CLI's own go.mod decides
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	return cmd.CombinedOutput()
}

// natsCLIBuilt returns the path of the nats CLI goInstallNATSCLI built in
// dir, or skips the test when the module proxy could not be reached
// (except in CI, where it fails).
func natsCLIBuilt(t *testing.T, dir string, out []byte, err error) string {
	t.Helper()
	if err != nil {
		msg := "go install " + natsCLIPackage + ": " + string(out)
		if os.Getenv("CI") == "" && unreachableProxy(string(out)) {
			t.Skipf("the module proxy cannot be reached, so the nats CLI cannot be built (CI fails here instead): %s", msg)
		}
		t.Fatal(msg)
	}
	natsCLI := filepath.Join(dir, "nats")
	if runtime.GOOS == "windows" {
		natsCLI += ".exe"
	}
	return natsCLI
}

// unreachableProxy tells go command output that failed for want of the
// network from one that failed otherwise.
func unreachableProxy(out string) bool {
	for _, s := range []string{"dial tcp", "no such host", "connection refused", "i/o timeout", "TLS handshake timeout",
		"GOPROXY=off", "module lookup disabled", "network is unreachable", "proxyconnect"} {
		if strings.Contains(out, s) {
			return true
		}
	}
	return false
}

// startJetStream starts an in-process nats-server with JetStream on a
// store of its own.
func startJetStream(t *testing.T) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
	require.NoError(t, err)
	s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	require.True(t, s.ReadyForConnections(10*time.Second), "nats-server did not start")
	return s
}

// serviceEnv is the environment of every consumer process: only these
// variables, so that none of the caller's reaches it.
func serviceEnv(natsURL, ipayURL string) []string {
	return []string{
		"NATS_URL=" + natsURL,
		"INSTANTPAY_BASE_URL=" + ipayURL,
		"INSTANTPAY_CLIENT_ID=id",
		"INSTANTPAY_CLIENT_SECRET=secret",
		"DEFAULT_PROVIDER=instantpay",
		"HTTP_ADDR=127.0.0.1:0",
		"CONCURRENCY=8",
		"MAX_DELIVER=2",
		"ACK_WAIT=5s",
		"RETRY_INITIAL_INTERVAL=5ms",
		"RETRY_MAX_INTERVAL=20ms",
		"RETRY_MAX_ELAPSED=100ms",
		"PROVIDER_TIMEOUT=2s",
		"CIRCUIT_OPEN_FOR=200ms",
		"SHUTDOWN_GRACE=5s",
		"LOG_FORMAT=text",
		"HOME=" + os.TempDir(),
	}
}

// runConsumer runs the consumer with args and returns its standard
// output, requiring the exit code want.
func runConsumer(t *testing.T, consumer string, env []string, want int, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, consumer, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.Equal(t, want, exitCode(t, err), "consumer %s: exit code\nstdout: %s\nstderr: %s", strings.Join(args, " "), &stdout, &stderr)
	return stdout.String()
}

// runScript runs one of deploy/backup's scripts against natsURL with the
// built CLI, requiring the exit code want, and returns its output.
func runScript(t *testing.T, natsCLI, natsURL string, want int, script string, args ...string) string {
	t.Helper()
	return runScriptEnv(t, natsCLI, natsURL, nil, want, script, args...)
}

// runScriptEnv is runScript with more variables in the script's
// environment (a NATS user's, say).
func runScriptEnv(t *testing.T, natsCLI, natsURL string, env []string, want int, script string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	home := t.TempDir() // no nats context of the caller's
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "XDG_CONFIG_HOME=" + home,
		"NATS_URL=" + natsURL, "NATS_CLI=" + natsCLI}, env...)
	out, err := cmd.CombinedOutput()
	require.Equal(t, want, exitCode(t, err), "%s %s: exit code\n%s", script, strings.Join(args, " "), out)
	return string(out)
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("run: %v", err)
	return -1
}

// startService starts `consumer run` and returns a func that stops it
// with SIGTERM and waits for it (also called at cleanup).
func startService(t *testing.T, consumer string, env []string) (stop func()) {
	t.Helper()
	cmd := exec.Command(consumer, "run")
	cmd.Env = env
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-done
				t.Errorf("consumer run did not stop within 15s of SIGTERM")
			}
			if t.Failed() {
				t.Logf("consumer run's log:\n%s", &logs)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// event is a CloudEvents envelope of contactrelay's, as far as checked.
type event struct {
	ID      string         `json:"id"`
	Type    string         `json:"type"`
	Subject string         `json:"subject"`
	Data    map[string]any `json:"data"`
}

// publishWait runs `consumer publish --wait` with args, requiring exit
// code want (0 contact.created, 1 contact.failed), and returns the event.
func publishWait(t *testing.T, consumer string, env []string, want int, args ...string) event {
	t.Helper()
	out := runConsumer(t, consumer, env, want, append([]string{"publish", "--wait", "--timeout", "30s"}, args...)...)
	var e event
	require.NoError(t, json.Unmarshal([]byte(out), &e), "publish --wait prints the event: %s", out)
	return e
}

// failureKeys reads `consumer failures --json` output as commandId:reason,
// one per line.
func failureKeys(t *testing.T, out string) []string {
	t.Helper()
	var keys []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var f struct {
			CommandID string `json:"commandId"`
			Reason    string `json:"reason"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &f), line)
		keys = append(keys, f.CommandID+":"+f.Reason)
	}
	return keys
}

// awaitOutcome returns the next event of commandID on msgs.
func awaitOutcome(t *testing.T, msgs <-chan *nats.Msg, commandID string) event {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m := <-msgs:
			if m.Subject == "contact.create" || len(m.Data) == 0 {
				continue // a command, or the service's permission probe
			}
			var e event
			require.NoError(t, json.Unmarshal(m.Data, &e))
			if e.Subject == commandID {
				return e
			}
		case <-timeout:
			t.Fatalf("no outcome of %s within 20s", commandID)
		}
	}
}

// streamCounts is each backed-up stream's message count and last
// sequence, and its consumers' names and ack floors.
func streamCounts(t *testing.T, s *server.Server) map[string]string {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := map[string]string{}
	for _, name := range backedUpStreams {
		st, err := js.Stream(ctx, name)
		require.NoError(t, err, name)
		info, err := st.Info(ctx)
		require.NoError(t, err, name)
		desc := []string{
			"msgs=" + strconv.FormatUint(info.State.Msgs, 10),
			"last=" + strconv.FormatUint(info.State.LastSeq, 10),
		}
		// Durable consumers only: a watcher's ephemeral consumer (a
		// service instance watching the pauses) is not backed up.
		infos := st.ListConsumers(ctx)
		for ci := range infos.Info() {
			if ci.Config.Durable == "" {
				continue
			}
			desc = append(desc, "consumer "+ci.Name+" ackfloor="+strconv.FormatUint(ci.AckFloor.Stream, 10)+" pending="+strconv.FormatUint(ci.NumPending, 10))
		}
		require.NoError(t, infos.Err(), name)
		slices.Sort(desc[2:])
		out[name] = strings.Join(desc, " ")
	}
	return out
}
