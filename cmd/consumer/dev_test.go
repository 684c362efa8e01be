package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// devRun is a 'consumer dev' run by a test.
type devRun struct {
	banner   chan struct{} // closed when the banner is printed
	finished chan struct{} // closed when the command returned
	err      error
	cancel   context.CancelFunc
	logs     *syncBuffer
	stdout   *syncBuffer
}

// bannerWriter closes banner on the first write of dev mode's banner.
type bannerWriter struct {
	once   sync.Once
	banner chan struct{}
	out    *syncBuffer
}

func (w *bannerWriter) Write(p []byte) (int, error) {
	_, _ = w.out.Write(p)
	if strings.Contains(string(p), "contactrelay dev mode") {
		w.once.Do(func() { close(w.banner) })
	}
	return len(p), nil
}

// startDev runs 'consumer dev' with args and env until the test ends, and
// returns once it printed its banner or returned.
func startDev(t *testing.T, env map[string]string, args ...string) *devRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	d := &devRun{banner: make(chan struct{}), finished: make(chan struct{}), cancel: cancel, logs: &syncBuffer{}, stdout: &syncBuffer{}}
	go func() {
		defer close(d.finished)
		d.err = run(ctx, append([]string{"dev"}, args...), func(k string) string { return env[k] }, nil,
			&bannerWriter{banner: d.banner, out: d.stdout}, d.logs)
	}()
	t.Cleanup(d.stop)
	select {
	case <-d.banner:
	case <-d.finished:
	}
	return d
}

func (d *devRun) stop() {
	d.cancel()
	<-d.finished
}

// started reports whether the run printed its banner.
func (d *devRun) started() bool {
	select {
	case <-d.banner:
		return true
	default:
		return false
	}
}

// takenPort listens on a loopback port for the test's duration.
func takenPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

func TestDevLocksItsDataDir(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"HTTP_ADDR": "127.0.0.1:0", "CONSOLE_ADDR": "127.0.0.1:0"}
	first := startDev(t, env, "--data-dir", dir, "--nats-port", "0")
	require.True(t, first.started(), "the first dev starts: %v\n%s", first.err, first.logs)

	second := startDev(t, env, "--data-dir", dir, "--nats-port", "0")
	require.False(t, second.started(), "a second server on the same data folder must not start")
	require.Error(t, second.err)
	assert.Equal(t, 2, exitCode(second.err))
	assert.Contains(t, second.err.Error(), fmt.Sprintf("process %d", os.Getpid()), "the error names the process holding the folder")
	assert.Contains(t, second.err.Error(), "--data-dir")

	first.stop()
	require.NoError(t, first.err)
	third := startDev(t, env, "--data-dir", dir, "--nats-port", "0")
	assert.True(t, third.started(), "the folder is free once the first stopped: %v", third.err)
}

func TestDevTakenNATSPortFailsAtOnce(t *testing.T) {
	port := takenPort(t)
	start := time.Now()
	d := startDev(t, map[string]string{"HTTP_ADDR": "127.0.0.1:0", "CONSOLE_ADDR": "127.0.0.1:0"}, "--data-dir", t.TempDir(), "--nats-port", fmt.Sprint(port))
	require.False(t, d.started())
	assert.Less(t, time.Since(start), 5*time.Second, "no waiting for a server that cannot listen")
	require.Error(t, d.err)
	assert.Equal(t, 2, exitCode(d.err))
	for _, want := range []string{fmt.Sprintf("127.0.0.1:%d is taken", port), "--nats-port", "--data-dir"} {
		assert.Contains(t, d.err.Error(), want)
	}
}

func TestDevTakenHTTPPortIsAnError(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", takenPort(t))
	d := startDev(t, map[string]string{"HTTP_ADDR": addr, "CONSOLE_ADDR": "127.0.0.1:0"}, "--data-dir", t.TempDir(), "--nats-port", "0")
	require.False(t, d.started(), "dev must not move to another HTTP port silently")
	require.Error(t, d.err)
	assert.Equal(t, 2, exitCode(d.err))
	assert.Contains(t, d.err.Error(), "HTTP_ADDR "+addr+" is taken")
}

func TestDevStartsTheConsoleAndPrintsItsURL(t *testing.T) {
	d := startDev(t, map[string]string{"HTTP_ADDR": "127.0.0.1:0", "CONSOLE_ADDR": "127.0.0.1:0"}, "--data-dir", t.TempDir(), "--nats-port", "0")
	require.True(t, d.started(), "dev starts: %v\n%s", d.err, d.logs)
	m := regexp.MustCompile(`console +(http://127\.0\.0\.1:[0-9]+/) +\(no authentication: loopback only\)`).FindStringSubmatch(d.stdout.String())
	require.NotNil(t, m, "the banner names the console's URL and says it has no authentication:\n%s", d.stdout)
	resp, err := http.Get(m[1])
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), "<h1>Overview</h1>", "the console's overview answers")
	assert.Contains(t, string(body), "no authentication (loopback only)", "every page says it runs without authentication")
}

func TestDevTakenConsolePortIsAnError(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", takenPort(t))
	d := startDev(t, map[string]string{"HTTP_ADDR": "127.0.0.1:0", "CONSOLE_ADDR": addr}, "--data-dir", t.TempDir(), "--nats-port", "0")
	require.False(t, d.started(), "dev must not move to another console port silently")
	require.Error(t, d.err)
	assert.Equal(t, 2, exitCode(d.err))
	assert.Contains(t, d.err.Error(), "CONSOLE_ADDR "+addr+" is taken")
}
