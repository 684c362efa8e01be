package sandbox

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wantCreate checks one create call's outcome: an HTTP status and body
// code, or success when code is empty.
func wantCreate(t *testing.T, f *fixture, status int, code string, msgAndArgs ...any) answer {
	t.Helper()
	a, err := f.create(f.srv.Client())
	require.NoError(t, err, msgAndArgs...)
	if code == "" {
		code = f.success
	}
	assert.Equal(t, status, a.status, msgAndArgs...)
	assert.Equal(t, code, f.code(a), msgAndArgs...)
	return a
}

// errorCode is the body code each provider gives an injected error.
func errorCode(f *fixture, instantPay, pik string) string {
	if f.success == "TXN" {
		return instantPay
	}
	return pik
}

func TestFaults(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, f *fixture)
	}{
		{"error reply counts down Times", func(t *testing.T, f *fixture) {
			f.sb.Inject(Fault{Times: 2, Status: 503, RetryAfter: 1500 * time.Millisecond, Message: "busy"})
			code := errorCode(f, "ISE", "503")
			a := wantCreate(t, f, 503, code, "first call fails")
			assert.Equal(t, "2", a.header.Get("Retry-After"), "Retry-After is whole seconds rounded up")
			assert.Contains(t, a.body, "environment", "the error is labelled")
			wantCreate(t, f, 503, code, "second call fails")
			wantCreate(t, f, 200, "", "third call succeeds")
			assert.Equal(t, 3, f.sb.CreateCalls(), "every call is counted")
			assert.Len(t, f.sb.Contacts(), 1, "only the successful call stored a contact")
		}},
		{"code in the body with HTTP 200", func(t *testing.T, f *fixture) {
			code := errorCode(f, "TUP", "500")
			f.sb.Inject(Fault{Times: 1, Code: code})
			a := wantCreate(t, f, 200, code, "the fault's code is in the body")
			msg := a.body["status"]
			if msg == nil {
				msg = a.body["message"]
			}
			assert.Contains(t, msg, "SANDBOX", "the default message says SANDBOX")
			wantCreate(t, f, 200, "", "the next call succeeds")
		}},
		{"Times 0 lasts until cleared", func(t *testing.T, f *fixture) {
			f.sb.Inject(Fault{Status: 500})
			for range 3 {
				wantCreate(t, f, 500, errorCode(f, "ISE", "500"), "the fault stays")
			}
			f.sb.ClearFaults()
			wantCreate(t, f, 200, "", "cleared")
		}},
		{"faults apply in order", func(t *testing.T, f *fixture) {
			f.sb.Inject(Fault{Times: 1, Status: 429})
			f.sb.Inject(Fault{Times: 1, Status: 500})
			wantCreate(t, f, 429, errorCode(f, "ISE", "429"), "first fault")
			wantCreate(t, f, 500, errorCode(f, "ISE", "500"), "second fault")
			wantCreate(t, f, 200, "", "queue empty")
		}},
		{"Email picks the calls a fault applies to", func(t *testing.T, f *fixture) {
			f.sb.Inject(Fault{Times: 1, Status: 503, RetryAfter: 300 * time.Second, Email: "USER2@example.com"})
			f.sb.Inject(Fault{Times: 1, Status: 429})
			wantCreate(t, f, 429, errorCode(f, "ISE", "429"), "user1 passes the Email fault by and takes the next")
			a := wantCreate(t, f, 503, errorCode(f, "ISE", "503"), "user2's call fails, its email matched ignoring case")
			assert.Equal(t, "300", a.header.Get("Retry-After"), "with the fault's Retry-After")
			wantCreate(t, f, 200, "", "both faults are used up")
			assert.Len(t, f.sb.Contacts(), 1, "only the third call stored a contact")
		}},
		{"latency delays the call", func(t *testing.T, f *fixture) {
			f.sb.Inject(Fault{Times: 1, Latency: 150 * time.Millisecond})
			start := time.Now()
			wantCreate(t, f, 200, "", "a latency-only fault still succeeds")
			assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond, "the call was delayed")
		}},
		{"Hang ends when the client times out", func(t *testing.T, f *fixture) {
			f.sb.Inject(Fault{Times: 1, Hang: true})
			_, err := f.create(&http.Client{Timeout: 200 * time.Millisecond})
			var netErr net.Error
			require.ErrorAs(t, err, &netErr, "the client gets no answer")
			assert.True(t, netErr.Timeout(), "the client timed out: %v", err)
			assert.Eventually(t, func() bool { return f.harness.hanging.Load() == 0 },
				2*time.Second, 10*time.Millisecond, "the hung handler returns once the client gives up")
			assert.Empty(t, f.sb.Contacts(), "a hang stores nothing")
			wantCreate(t, f, 200, "", "the next call succeeds")
		}},
		{"CreateThenHang stores the contact", func(t *testing.T, f *fixture) {
			f.sb.Inject(Fault{Times: 1, CreateThenHang: true})
			_, err := f.create(&http.Client{Timeout: 200 * time.Millisecond})
			require.Error(t, err, "the client gets no answer")
			assert.Len(t, f.sb.Contacts(), 1, "the contact was stored all the same")
			l, err := f.list()
			require.NoError(t, err, "the lookup answers")
			assert.Equal(t, f.success, f.code(l), "the lookup succeeds: %v", l.body)
			assert.Eventually(t, func() bool { return f.harness.hanging.Load() == 0 },
				2*time.Second, 10*time.Millisecond, "the hung handler returns")
		}},
		{"Drop closes the connection", func(t *testing.T, f *fixture) {
			f.sb.Inject(Fault{Times: 1, Drop: true})
			start := time.Now()
			_, err := f.create(f.srv.Client())
			require.Error(t, err, "the client gets a connection error")
			var netErr net.Error
			assert.False(t, errors.As(err, &netErr) && netErr.Timeout(), "not a timeout: %v", err)
			assert.Less(t, time.Since(start), time.Second, "the error comes at once")
			assert.Equal(t, 1, f.sb.CreateCalls(), "the dropped call is counted")
			assert.Empty(t, f.sb.Contacts(), "a drop stores nothing")
			wantCreate(t, f, 200, "", "the next call succeeds")
		}},
		{"SetDown answers 503 to everything", func(t *testing.T, f *fixture) {
			f.sb.Inject(Fault{Times: 1, Status: 429})
			f.sb.SetDown(true)
			wantCreate(t, f, 503, errorCode(f, "ISE", "503"), "creates fail while down")
			l, err := f.list()
			require.NoError(t, err, "the lookup answers")
			assert.Equal(t, 503, l.status, "lookups fail while down")
			assert.Equal(t, 1, f.sb.CreateCalls(), "creates are counted while down")
			f.sb.SetDown(false)
			wantCreate(t, f, 429, errorCode(f, "ISE", "429"), "the queued fault waited")
			wantCreate(t, f, 200, "", "up again")
		}},
		{"Close releases a hang", func(t *testing.T, f *fixture) {
			f.sb.Inject(Fault{Hang: true})
			done := make(chan error, 1)
			go func() {
				_, err := f.create(f.srv.Client())
				done <- err
			}()
			require.Eventually(t, func() bool { return f.harness.hanging.Load() == 1 },
				2*time.Second, 10*time.Millisecond, "the request hangs")
			f.sb.Close()
			select {
			case err := <-done:
				assert.Error(t, err, "the released request ends without an answer")
			case <-time.After(2 * time.Second):
				t.Fatal("Close did not release the hanging request")
			}
		}},
		{"concurrent calls share Times", func(t *testing.T, f *fixture) {
			f.sb.Inject(Fault{Times: 5, Status: 500})
			var mu sync.Mutex
			statuses := map[int]int{}
			var wg sync.WaitGroup
			for range 20 {
				wg.Go(func() {
					a, err := f.create(f.srv.Client())
					if !assert.NoError(t, err, "every call answers") {
						return
					}
					mu.Lock()
					statuses[a.status]++
					mu.Unlock()
				})
			}
			wg.Wait()
			assert.Equal(t, map[int]int{500: 5, 200: 15}, statuses, "exactly Times calls fail")
			assert.Equal(t, 20, f.sb.CreateCalls(), "every call is counted")
		}},
	}
	for _, p := range providers() {
		for _, tc := range cases {
			t.Run(p.name+"/"+tc.name, func(t *testing.T) {
				tc.run(t, p.new(t))
			})
		}
	}
}

func TestInjectPanicsOnInvalidFault(t *testing.T) {
	cases := []struct {
		name  string
		fault Fault
	}{
		{"negative times", Fault{Times: -1}},
		{"bad status", Fault{Status: 42}},
		{"negative latency", Fault{Latency: -time.Second}},
		{"negative retry after", Fault{RetryAfter: -time.Second}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sb := NewInstantPay(InstantPayConfig{})
			assert.Panics(t, func() { sb.Inject(tc.fault) }, "an invalid fault is a programming error")
		})
	}
}
