package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/config"
	"github.com/contactrelay/contactrelay/internal/console"
	"github.com/contactrelay/contactrelay/internal/failstore"
)

// chromium returns the path of a Chromium to drive; without one the test
// is skipped, or fails under CI, which installs it (.ci/run).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no Chromium on PATH (chromium, chromium-browser, google-chrome): CI must install it (.ci/run does, with apt-get install chromium)")
	}
	t.Skip("browser test skipped: no Chromium on PATH; install it (Debian: apt-get install chromium) to run it")
	return ""
}

// browser starts a headless Chromium for the test and returns a tab's
// context; dialogs the page opens (an alert an injection would run) are
// counted in alerts.
func browser(t *testing.T, alerts *atomic.Int32) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.WindowSize(1280, 1000),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to sandbox as root
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTime(); cancel(); cancelAlloc() })
	require.NoError(t, chromedp.Do(ctx), "start Chromium")
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			alerts.Add(1)
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	return ctx
}

// startTestConsole serves the console on the test's JetStream, with the
// given sign-in, reloading every 300ms.
func startTestConsole(t *testing.T, e *testEnv, user, password string) string {
	t.Helper()
	srv, err := console.New(console.Config{JS: e.js, User: user, Password: password, Refresh: 300 * time.Millisecond,
		StatsRefresh: time.Second, Log: config.NewLogger(testWriter{t}, 0, "text")})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 5 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	ran := make(chan struct{})
	go func() { defer close(ran); _ = srv.Run(ctx) }()
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { cancel(); _ = hs.Close(); <-ran })
	return "http://" + ln.Addr().String()
}

// text reads an element's text.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(cctx, chromedp.Text(chromedp.CSS(sel)))
	require.NoError(t, err, "read %s", sel)
	return s
}

// awaitText reloads url until sel's text contains want.
func awaitText(t *testing.T, ctx context.Context, url, sel, want string, within time.Duration) {
	t.Helper()
	var s string
	deadline := time.Now().Add(within)
	for {
		err := chromedp.Do(ctx, chromedp.Navigate(url))
		if err == nil {
			s, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		}
		if err == nil && strings.Contains(s, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s says %q, want %q (%v)", url, sel, s, want, err)
		}
		time.Sleep(200 * time.Millisecond) // a poll pause: the page is reloaded until it says so
	}
}

// clickAndLoad clicks sel, which loads another page, and waits until
// that page has loaded.
func clickAndLoad(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__before = true`))
	require.NoError(t, err)
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	require.NoError(t, chromedp.Do(cctx, chromedp.Click(chromedp.CSS(sel))), "click %s", sel)
	awaitLoad(t, ctx, "clicking "+sel)
}

// awaitLoad waits until the page marked with window.__before has been
// replaced by a new one, loaded.
func awaitLoad(t *testing.T, ctx context.Context, after string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		// The old page may go while it is asked: ask again.
		loaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!window.__before && document.readyState === 'complete'`))
		if err == nil && loaded {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page after %s did not load: %v", after, err)
		}
		time.Sleep(50 * time.Millisecond) // a poll pause, as require.Eventually takes
	}
}

// screenshot saves the page to docs/ when CONTACTRELAY_SCREENSHOTS is set,
// so the docs' pictures are made by this test.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("CONTACTRELAY_SCREENSHOTS") == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	path := filepath.Join("..", "..", "docs", "console-"+name+".png")
	require.NoError(t, os.WriteFile(path, png, 0o644))
	t.Logf("wrote %s", path)
}

// consoleUnderTest starts a Chromium, the service with its sandboxes, and
// a console with the sign-in ops / "correct horse battery"; alerts counts
// the dialogs pages open.
func consoleUnderTest(t *testing.T) (ctx context.Context, e *testEnv, base string, alerts *atomic.Int32) {
	alerts = new(atomic.Int32)
	ctx = browser(t, alerts)
	e = newTestEnv(t)
	e.quietLogs = true
	e.start(t)
	return ctx, e, startTestConsole(t, e, "ops", "correct horse battery"), alerts
}

// signIn signs in from the sign-in page that url sends to.
func signIn(t *testing.T, ctx context.Context, url, user, password string) {
	t.Helper()
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.ID("signin")),
		chromedp.SendKeys(chromedp.ID("user"), user),
		chromedp.SendKeys(chromedp.ID("password"), password),
	))
	clickAndLoad(t, ctx, "#signin")
}

// TestConsoleInABrowser uses the console as a person would, in a real
// headless Chromium, against the service, its sandbox providers and
// JetStream: sign in, see failures appear during a provider outage,
// pause and resume a provider and see the Status page, filter, open one,
// repair an invalid command (a rule error first), replay a group and
// watch it leave the open set as contacts are created, and discard one; a command carrying markup shows it as text and runs
// nothing; a POST without the CSRF token and requests without a session
// are refused.
func TestConsoleInABrowser(t *testing.T) {
	ctx, e, base, alerts := consoleUnderTest(t)

	// Unauthenticated requests are refused.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(base + "/failures")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "a page without a session sends to the sign-in")
	resp, err = noRedirect.PostForm(base+"/discard", url.Values{"reason": {"exhausted"}})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "an action without a session is refused")

	signIn(t, ctx, base+"/failures", "ops", "correct horse battery")
	assert.Contains(t, text(t, ctx, "#matched"), "0 of 0", "no failure yet")

	// An outage: three commands exhaust their deliveries; an invalid one
	// and one carrying markup fail at once.
	e.ipay.SetDown(true)
	for i := range 3 {
		e.publish(t, fmt.Sprintf(`{"commandId":"outage-%d","name":"Person %d","email":"p%d@example.com","mobile":"+91987654321%d","tagId":"65a1b2c3d4e5f6a7b8c9d0e1"}`, i, i, i, i))
	}
	e.publish(t, `{"commandId":"bad-email","name":"Jane Doe","email":"not-an-email","mobile":"+919876543210","tagId":"65a1b2c3d4e5f6a7b8c9d0e1"}`)
	e.publish(t, `{"commandId":"xss","name":"<script>alert(1)</script>","email":"x@example.com","mobile":"+919876543219","tagId":"\"><img src=x onerror=alert(2)>","companyName":"<b>bold</b>","metadata":{"a":"x"},"provider":"<svg onload=alert(3)>"}`)
	awaitText(t, ctx, base+"/failures", "#matched", "5 of 5", time.Minute)
	screenshot(t, ctx, "failures")

	// Pause PIK for maintenance from the Providers page; the Status page
	// shows the instance that answered and the pause; then resume it.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/pauses"), chromedp.WaitVisible(chromedp.ID("providers"))))
	assert.Equal(t, "running", text(t, ctx, "#state-pik"))
	require.NoError(t, chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("reason-pik"), "PIK maintenance window")))
	clickAndLoad(t, ctx, "#pause-pik")
	assert.Contains(t, text(t, ctx, "#flash"), "pik paused")
	assert.Equal(t, "paused", text(t, ctx, "#state-pik"))
	assert.Contains(t, text(t, ctx, "#provider-pik"), "PIK maintenance window")
	assert.Equal(t, "running", text(t, ctx, "#state-instantpay"))
	screenshot(t, ctx, "providers")
	awaitText(t, ctx, base+"/status", "#instances", "1", 10*time.Second)
	assert.Contains(t, text(t, ctx, "#pauses"), "pik paused")
	assert.Contains(t, text(t, ctx, "main"), "instantpay", "the instance's providers, with their circuits")
	screenshot(t, ctx, "status")
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/pauses"), chromedp.WaitVisible(chromedp.ID("resume-pik"))))
	clickAndLoad(t, ctx, "#resume-pik")
	assert.Equal(t, "running", text(t, ctx, "#state-pik"), "resumed")
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/failures"), chromedp.WaitVisible(chromedp.ID("matched"))))

	// Filter.
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`input[name=reason][value=exhausted]`))))
	clickAndLoad(t, ctx, "#apply")
	assert.Contains(t, text(t, ctx, "#matched"), "3 of 5", "the filter keeps the exhausted ones")
	require.NoError(t, chromedp.Do(ctx, chromedp.SetValue(chromedp.ID("q"), "outage-1")))
	clickAndLoad(t, ctx, "#apply")
	assert.Contains(t, text(t, ctx, "#matched"), "1 of 5", "free text narrows it to one")

	// Open one.
	clickAndLoad(t, ctx, "#failures a.cid")
	assert.Equal(t, "outage-1", text(t, ctx, "#command-id"))
	assert.Contains(t, text(t, ctx, "main"), "Open failure: exhausted at instantpay")
	assert.Contains(t, text(t, ctx, "#upstream"), "503", "the provider's last answer")
	assert.Contains(t, text(t, ctx, "#command"), "p***@example.com", "email masked")
	assert.NotContains(t, text(t, ctx, "#command"), "p1@example.com")
	screenshot(t, ctx, "failure")
	clickAndLoad(t, ctx, "#unmask")
	assert.Contains(t, text(t, ctx, "#command"), "p1@example.com", "unmasked on request")

	// Markup in a command is text, and runs nothing.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/failure?id=xss"), chromedp.WaitVisible(chromedp.ID("command"))))
	cmdText := text(t, ctx, "#command")
	assert.Contains(t, cmdText, "<script>alert(1)</script>", "the payload is shown as text")
	assert.Contains(t, cmdText, `"><img src=x onerror=alert(2)>`)
	injected, err := chromedp.Run(ctx, chromedp.Evaluate[int](
		`document.querySelectorAll('img, svg, b, script:not([src="/assets/console.js"])').length`))
	require.NoError(t, err)
	assert.Zero(t, injected, "no element came from the command")
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/failures"), chromedp.WaitVisible(chromedp.ID("matched"))))

	// A POST without the CSRF token is refused, from the page itself.
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](
		`fetch('/discard', {method: 'POST', body: new URLSearchParams({command: 'xss'})}).then(r => r.status)`, chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	assert.Equal(t, http.StatusForbidden, status, "a POST without the CSRF token is refused")

	// The provider is back. Repair the invalid command: a rule error
	// first, then a good email.
	e.ipay.SetDown(false)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(base+"/failure?id=bad-email"),
		chromedp.WaitVisible(chromedp.ID("rules")),
	))
	assert.Contains(t, text(t, ctx, "#rules"), "email must be a valid email address")
	clickAndLoad(t, ctx, "#repair")
	require.NoError(t, chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("f-email"), "still-not-an-email")))
	clickAndLoad(t, ctx, "#send-repair")
	assert.Contains(t, text(t, ctx, "#e-email"), "email must be a valid email address", "the rule's error is beside the field")
	_, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('f-email').value = ''`))
	require.NoError(t, err)
	require.NoError(t, chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("f-email"), "jane@example.com")))
	clickAndLoad(t, ctx, "#send-repair")
	assert.Contains(t, text(t, ctx, "#flash"), "Repaired and sent")
	awaitText(t, ctx, base+"/failure?id=bad-email", "main", "has no open failure: its contact exists", 30*time.Second)
	assert.Contains(t, text(t, ctx, "#generations"), "contact.created", "the repair's generation")
	assert.Contains(t, text(t, ctx, "#generations"), "contact.failed", "and the original failure")

	// Replay the outage's group, watch its progress and the failures
	// leave the open set as the contacts are created.
	awaitText(t, ctx, base+"/", "#open-count", "4", 10*time.Second)
	screenshot(t, ctx, "overview")
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/failures?view=groups&reason=exhausted"), chromedp.WaitVisible(chromedp.ID("groups"))))
	groupSize := text(t, ctx, "#groups tbody tr td.num") // the largest group, the circuit held open
	clickAndLoad(t, ctx, "#groups a.button")
	assert.Equal(t, groupSize, text(t, ctx, "#will-send"), "the preview says how many are sent")
	require.NoError(t, chromedp.Do(ctx, chromedp.SetValue(chromedp.ID("rate"), "50")))
	clickAndLoad(t, ctx, "#confirm")
	_, err = chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById('job-phase').textContent === 'done'`, chromedp.WithPollingTimeout(30*time.Second)))
	require.NoError(t, err, "the progress reaches done without a reload")
	assert.Equal(t, groupSize, text(t, ctx, "#job-replayed"), "the group was sent")
	// Over, the page offers no stop, lights Failures in the nav, and its
	// start time moves on.
	_, err = chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById('cancel-job') === null`, chromedp.WithPollingTimeout(5*time.Second)))
	require.NoError(t, err, "a finished replay offers no \"Stop the replay\"")
	assert.Equal(t, "Failures", text(t, ctx, `nav a[aria-current="page"]`), "the nav lights Failures on a replay's page")
	started := text(t, ctx, "#job-started")
	_, err = chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf(`document.getElementById('job-started').textContent !== %q`, started), chromedp.WithPollingTimeout(5*time.Second)))
	require.NoError(t, err, "the replay's start time (%s) moves on while the page is open", started)
	// The rest of the outage (another message: the provider's own 503),
	// by its filter.
	n, err := strconv.Atoi(groupSize)
	require.NoError(t, err)
	awaitText(t, ctx, base+"/failures?reason=exhausted", "#matched", fmt.Sprintf("%d of", 3-n), 30*time.Second)
	if n < 3 {
		clickAndLoad(t, ctx, "#replay-filter")
		clickAndLoad(t, ctx, "#confirm")
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById('job-phase').textContent === 'done'`, chromedp.WithPollingTimeout(30*time.Second)))
		require.NoError(t, err)
	}
	awaitText(t, ctx, base+"/failures?reason=exhausted", "#matched", "0 of", 30*time.Second)
	created := 0
	for _, ev := range e.events(t) {
		if ev.Type == contact.SubjectCreated && strings.HasPrefix(ev.Subject, "outage-") {
			created++
		}
	}
	assert.Equal(t, 3, created, "each replayed command's contact was created")

	// Discard the last one.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/failure?id=xss"), chromedp.WaitVisible(chromedp.ID("discard-one"))))
	clickAndLoad(t, ctx, "#discard-one")
	clickAndLoad(t, ctx, "#confirm-discard")
	assert.Contains(t, text(t, ctx, "#result"), "1 of 1 discarded")
	awaitText(t, ctx, base+"/failures", "#matched", "0 of 0", 10*time.Second)
	snap, err := failstore.Load(context.Background(), e.js, failstore.Select{})
	require.NoError(t, err)
	assert.Empty(t, snap.Failures, "nothing is open")

	// Every action is on the activity page.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/activity"), chromedp.WaitVisible(chromedp.ID("activity"))))
	activity := text(t, ctx, "#activity")
	for _, want := range []string{"pause", "resume", "unmask", "repair", "replay", "discard", "replayed, 0 already sent, 0 refused, 0 skipped", "1 of 1 discarded"} {
		assert.Contains(t, activity, want)
	}
	assert.Zero(t, alerts.Load(), "no dialog opened: nothing from a command ran")
}

// contrastJS finds the visible text on the page with the lowest contrast
// against the background it is drawn on (WCAG's ratio: 1 to 21), and the
// luminance of the page's own background.
const contrastJS = `(() => {
  const parse = c => {
    const m = c.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const lum = c => {
    const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const bgOf = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0.5) return c;
    }
    return {r: 255, g: 255, b: 255, a: 1};
  };
  let worst = {ratio: 99, text: "", fg: "", bg: "", texts: 0};
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const el = n.parentElement;
    const st = getComputedStyle(el);
    if (!n.textContent.trim() || st.visibility === 'hidden' || el.getClientRects().length === 0) continue;
    worst.texts++;
    const fg = parse(st.color), bg = bgOf(el);
    const a = lum(fg), b = lum(bg);
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < worst.ratio) {
      worst.ratio = ratio; worst.text = n.textContent.trim().slice(0, 60); worst.fg = st.color;
      worst.bg = 'rgb(' + bg.r + ', ' + bg.g + ', ' + bg.b + ')';
    }
  }
  worst.page = lum(bgOf(document.body));
  return worst;
})()`

type contrast struct {
	Ratio float64 `json:"ratio"`
	Text  string  `json:"text"`
	FG    string  `json:"fg"`
	BG    string  `json:"bg"`
	Texts int     `json:"texts"`
	Page  float64 `json:"page"`
}

// TestConsoleReadableInDarkModeAndByKeyboard: every text on every page
// keeps a contrast of at least 4.5:1 (WCAG AA) in the light and the dark
// color scheme; on a phone's screen no page is wider than the screen; and
// a person without a mouse reaches a failure from the list with Tab, sees
// where the focus is, and opens it with Enter.
func TestConsoleReadableInDarkModeAndByKeyboard(t *testing.T) {
	ctx, e, base, alerts := consoleUnderTest(t)
	e.publish(t, `{"commandId":"dark-1","name":"Jane Doe","email":"not-an-email","mobile":"+919876543210","tagId":"65a1b2c3d4e5f6a7b8c9d0e1"}`)

	pages := []string{"/", "/failures", "/failures?view=groups", "/failure?id=dark-1", "/failure/repair?id=dark-1", "/activity", "/status", "/pauses", "/repair-file"}
	for _, scheme := range []string{"light", "dark"} {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
		require.NoError(t, err)
		if scheme == "light" {
			require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/login"), chromedp.WaitVisible(chromedp.ID("signin"))))
			checkContrast(t, ctx, scheme, "/login")
			signIn(t, ctx, base+"/failures", "ops", "correct horse battery")
			awaitText(t, ctx, base+"/failures", "#matched", "1 of 1", time.Minute)
		}
		for _, p := range pages {
			require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+p), chromedp.WaitVisible(chromedp.ID("main"))))
			c := checkContrast(t, ctx, scheme, p)
			if strings.HasPrefix(p, "/failure/repair") {
				// A label with code in it reads as a sentence, not a
				// column of its pieces.
				lines, err := chromedp.Run(ctx, chromedp.Evaluate[int](`(() => {
				  const r = document.createRange();
				  r.selectNodeContents(document.querySelector('label[for=extra]'));
				  return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size;
				})()`))
				require.NoError(t, err)
				assert.LessOrEqual(t, lines, 2, "the \"Other fields\" label takes %d lines", lines)
			}
			if scheme == "dark" {
				assert.Less(t, c.Page, 0.05, "%s: the page is dark in the dark scheme", p)
			} else {
				assert.Greater(t, c.Page, 0.8, "%s: the page is light in the light scheme", p)
			}
		}
		if scheme == "dark" {
			require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/failures"), chromedp.WaitVisible(chromedp.ID("main"))))
			screenshot(t, ctx, "failures-dark")
		}
	}

	// On a phone: no page is wider than the screen (a wide table scrolls
	// in its own box, not the page), and no action is hidden.
	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(3), chromedp.EmulateMobile)))
	for _, p := range pages {
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+p), chromedp.WaitVisible(chromedp.ID("main"))))
		width, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]any](`(() => {
		  let widest = '';
		  for (const el of document.querySelectorAll('body *')) {
		    const r = el.getBoundingClientRect();
		    if (r.right > document.documentElement.clientWidth + 1 && getComputedStyle(el).position !== 'absolute') { widest = el.tagName + (el.id ? '#' + el.id : '') + ' ' + Math.round(r.right); }
		  }
		  return {page: document.documentElement.scrollWidth, screen: document.documentElement.clientWidth, widest: widest};
		})()`))
		require.NoError(t, err)
		assert.EqualValues(t, 390, width["screen"], "the page is laid out for the phone's width")
		assert.LessOrEqual(t, width["page"], width["screen"], "%s is no wider than a phone's screen (%v)", p, width["widest"])
		switch p {
		case "/failures":
			screenshot(t, ctx, "failures-phone")
		case "/failures?view=groups":
			shown, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
			  const r = document.querySelector('#groups a.button').getBoundingClientRect();
			  return r.width > 0 && r.height > 0;
			})()`))
			require.NoError(t, err)
			assert.True(t, shown, "a group's replay button is there on a phone")
		}
	}
	require.NoError(t, chromedp.Do(ctx, chromedp.ResetViewport()))

	// Without a mouse: Tab from the top of the failures page to the first
	// failure, with a visible focus ring on the way, then Enter.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/failures"), chromedp.WaitVisible(chromedp.ID("failures"))))
	reached := false
	for range 60 {
		require.NoError(t, chromedp.Do(ctx, chromedp.KeyEvent(kb.Tab)))
		focus, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`(() => {
		  const el = document.activeElement, st = getComputedStyle(el);
		  return {cid: String(el.matches('#failures a.cid')), tag: el.tagName + (el.id ? '#' + el.id : ''),
		    outline: st.outlineStyle === 'none' || st.outlineWidth === '0px' ? '' : st.outlineStyle + ' ' + st.outlineWidth,
		    shadow: st.boxShadow === 'none' ? '' : st.boxShadow};
		})()`))
		require.NoError(t, err)
		if focus["tag"] != "BODY" {
			assert.True(t, focus["outline"] != "" || focus["shadow"] != "", "focus on %s is visible", focus["tag"])
		}
		if focus["cid"] == "true" {
			reached = true
			break
		}
	}
	require.True(t, reached, "Tab reaches the first failure of the list")
	_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__before = true`))
	require.NoError(t, err)
	require.NoError(t, chromedp.Do(ctx, chromedp.KeyEvent(kb.Enter)))
	awaitLoad(t, ctx, "Enter on the first failure")
	assert.Equal(t, "dark-1", text(t, ctx, "#command-id"), "Enter opened the failure")
	assert.Zero(t, alerts.Load())
}

// checkContrast fails when a text on the page has less than 4.5:1 against
// its background.
func checkContrast(t *testing.T, ctx context.Context, scheme, path string) contrast {
	t.Helper()
	c, err := chromedp.Run(ctx, chromedp.Evaluate[contrast](contrastJS))
	require.NoError(t, err)
	require.Positive(t, c.Texts, "%s: the page shows text", path)
	assert.GreaterOrEqual(t, c.Ratio, 4.5, "%s in the %s scheme: %q is %s on %s", path, scheme, c.Text, c.FG, c.BG)
	t.Logf("%-28s %-5s lowest contrast %.1f:1 (%q), %d texts", path, scheme, c.Ratio, c.Text, c.Texts)
	return c
}
