package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/provision"
	"github.com/contactrelay/contactrelay/internal/sandbox"
)

// The soak's shape: about 1% of its commands are poison, soakPerKind of
// each kind, spread evenly among valid commands.
const (
	soakCommands   = 10000
	soakPerKind    = 7
	soakMaxDeliver = 4
	// soakRetryAfter is what the provider asks some commands to wait: more
	// than any retry budget, so the command is deferred on the stream.
	soakRetryAfter = 300 * time.Second
	// soakRSSLimit bounds each instance's peak resident memory (VmHWM):
	// the service's own, not the NATS server's or the sandboxes'.
	soakRSSLimit = 150 << 20
	// soakDeferred is the kind of poison the provider answers 503 with
	// Retry-After: 300, once: the command is created on its next delivery.
	soakDeferred = "503 with Retry-After: 300"
)

// soakWant is the outcome one command must end in.
type soakWant struct {
	typ      string         // events.SubjectCreated or events.SubjectFailed
	reason   contact.Reason // for contact.failed
	field    string         // for invalid: a field the errors must name
	attempts int            // for contact.created: the create calls it took
}

// soakMsg is one command of the soak: what is published, and what must
// come of it.
type soakMsg struct {
	kind  string // "valid" or the poison's kind
	body  []byte // dropped once published, to keep the test's own memory down
	size  int    // the body's length
	msgID string // the Nats-Msg-Id header; "" for none
	// key is the commandId its event carries; "" for <stream>:<sequence>,
	// known once the stream has stored it.
	key   string
	want  soakWant
	email string // the contact it creates, for contact.created
}

// soakCommand is a valid command body without a commandId.
func soakCommand(email string) []byte {
	return fmt.Appendf(nil, `{"name":"Jane Doe","email":%q,"mobile":"+919876543210","tagId":%q}`, email, tagID)
}

var (
	soakCreated   = soakWant{typ: contact.SubjectCreated, attempts: 1}
	soakMalformed = soakWant{typ: contact.SubjectFailed, reason: contact.ReasonMalformed}
)

// soakPoison makes the i-th poison command of each kind. The conflict kind
// only marks its place: its body re-uses an earlier valid command's id.
var soakPoison = []struct {
	kind string
	make func(i int) soakMsg
}{
	{"5,000-character Nats-Msg-Id", func(i int) soakMsg {
		id := fmt.Sprintf("%04d", i) + strings.Repeat("x", 4996)
		return soakMsg{body: soakCommand(fmt.Sprintf("longid-%d@example.com", i)), msgID: id, want: soakMalformed}
	}},
	{"900 KiB of noise", func(i int) soakMsg {
		noise := make([]byte, 900<<10)
		_, _ = rand.Read(noise)
		noise[0] = 0xff
		id := fmt.Sprintf("soak-noise-%d", i)
		return soakMsg{body: noise, msgID: id, key: id, want: soakMalformed}
	}},
	{"10,000 levels of nesting", func(i int) soakMsg {
		id := fmt.Sprintf("soak-deep-%d", i)
		return soakMsg{body: []byte(deep(10000)), msgID: id, key: id, want: soakMalformed}
	}},
	{"10,000 levels inside pik", func(i int) soakMsg {
		return soakMsg{body: []byte(command(fmt.Sprintf("soak-deep-pik-%d", i), `"provider":"pik"`, `"pik":`+deep(10000))), want: soakMalformed}
	}},
	{"right-to-left override in the name", func(i int) soakMsg {
		id := fmt.Sprintf("soak-rlo-%d", i)
		return soakMsg{body: []byte(strings.Replace(command(id), "Jane Doe", "Jane\u202eeoD", 1)), key: id,
			want: soakWant{typ: contact.SubjectFailed, reason: contact.ReasonInvalid, field: "name"}}
	}},
	{"name of zero-width spaces", func(i int) soakMsg {
		id := fmt.Sprintf("soak-zw-%d", i)
		return soakMsg{body: []byte(strings.Replace(command(id), "Jane Doe", "\u200b\u200b", 1)), key: id,
			want: soakWant{typ: contact.SubjectFailed, reason: contact.ReasonInvalid, field: "name"}}
	}},
	{"NUL in the name", func(i int) soakMsg {
		id := fmt.Sprintf("soak-nul-%d", i)
		return soakMsg{body: []byte(strings.Replace(command(id), "Jane Doe", `Jane\u0000Doe`, 1)), key: id,
			want: soakWant{typ: contact.SubjectFailed, reason: contact.ReasonInvalid, field: "name"}}
	}},
	{"600-byte Nats-Msg-Id", func(i int) soakMsg {
		id := fmt.Sprintf("%04d", i) + strings.Repeat("é", 298)
		email := fmt.Sprintf("id600-%d@example.com", i)
		return soakMsg{body: soakCommand(email), msgID: id, key: id, want: soakCreated, email: email}
	}},
	{"commandId re-used with other content", func(int) soakMsg {
		return soakMsg{want: soakWant{typ: contact.SubjectFailed, reason: contact.ReasonConflict}}
	}},
	{"provider acme", func(i int) soakMsg {
		id := fmt.Sprintf("soak-acme-%d", i)
		return soakMsg{body: []byte(command(id, `"provider":"acme"`)), key: id,
			want: soakWant{typ: contact.SubjectFailed, reason: contact.ReasonUnroutable}}
	}},
	{soakDeferred, func(i int) soakMsg {
		id := fmt.Sprintf("soak-later-%d", i)
		body := command(id)
		if i%2 == 1 {
			body = command(id, `"provider":"pik"`)
		}
		return soakMsg{body: []byte(body), key: id, want: soakWant{typ: contact.SubjectCreated, attempts: 2}, email: id + "@example.com"}
	}},
	{"wrong JSON type", func(i int) soakMsg {
		id := fmt.Sprintf("soak-type-%d", i)
		wrong := [...]struct{ field, member string }{
			{"mobile", `"mobile":9876543210`}, {"name", `"name":["Jane"]`},
			{"metadata", `"metadata":{"k":1}`}, {"pik", `"pik":"x"`},
		}[i%4]
		return soakMsg{body: []byte(command(id, wrong.member)), key: id, // the last of repeated members counts
			want: soakWant{typ: contact.SubjectFailed, reason: contact.ReasonInvalid, field: wrong.field}}
	}},
	{"not an object", func(i int) soakMsg {
		id := fmt.Sprintf("soak-notobj-%d", i)
		body := [...]string{`[1,2,3]`, `"text"`, `42`, `null`, `true`}[i%5]
		return soakMsg{body: []byte(body), msgID: id, key: id, want: soakMalformed}
	}},
	{"empty body", func(i int) soakMsg {
		if i%2 == 0 {
			return soakMsg{want: soakMalformed}
		}
		id := fmt.Sprintf("soak-empty-%d", i)
		return soakMsg{msgID: id, key: id, want: soakMalformed}
	}},
	{"invalid UTF-8", func(i int) soakMsg {
		body := strings.Replace(command(fmt.Sprintf("soak-utf8-%d", i)), "Jane Doe", "Jane\xffDoe", 1)
		return soakMsg{body: []byte(body), want: soakMalformed}
	}},
}

// soakMessages lays out n commands: the poison at even intervals, each
// kind spread over the run, and valid commands, alternately for
// InstantPay and PIK, everywhere else.
func soakMessages(n int) []soakMsg {
	p := len(soakPoison) * soakPerKind
	msgs := make([]soakMsg, n)
	poisonAt := map[int]int{}
	for j := range p {
		poisonAt[(2*j+1)*n/(2*p)] = j
	}
	for pos := range msgs {
		j, poison := poisonAt[pos]
		if !poison {
			id := fmt.Sprintf("soak-%05d", pos)
			body := command(id)
			if pos%2 == 1 {
				body = command(id, `"provider":"pik"`)
			}
			msgs[pos] = soakMsg{kind: "valid", body: []byte(body), key: id, want: soakCreated, email: id + "@example.com"}
			continue
		}
		kind := soakPoison[j%len(soakPoison)]
		m := kind.make(j / len(soakPoison))
		m.kind = kind.kind
		if m.want.reason == contact.ReasonConflict {
			// The id of a valid command published well before, with
			// another name: the same email, other content.
			orig := max(pos-1000, 0)
			for msgs[orig].kind != "valid" {
				orig++
			}
			m.key = msgs[orig].key
			m.body = []byte(strings.Replace(string(msgs[orig].body), "Jane Doe", "Mallory Doe", 1))
		}
		msgs[pos] = m
	}
	return msgs
}

// TestSoakPoisonMix runs two instances through 10,000 commands of which
// about 1% are poison of every kind the service has met, and checks that
// every command ends in exactly its one outcome within MAX_DELIVER
// deliveries, that neither instance exits, that each instance's peak
// resident memory stays under 150 MiB, and that no contact is created
// twice. Each instance is a process of its own (TestSoakServiceProcess),
// so its memory is the service's alone: the NATS server, the sandboxes and
// the test's own checks stay in this process. Some commands are answered
// 503 with Retry-After: 300, so it takes over five minutes: it runs only
// with CONTACTRELAY_SOAK=1.
func TestSoakPoisonMix(t *testing.T) {
	if os.Getenv("CONTACTRELAY_SOAK") != "1" {
		t.Skip("a soak of over five minutes: set CONTACTRELAY_SOAK=1 to run it")
	}
	e := newTestEnv(t)
	e.vars["CONCURRENCY"] = "32"
	e.vars["MAX_DELIVER"] = strconv.Itoa(soakMaxDeliver)

	msgs := soakMessages(soakCommands)
	for _, m := range msgs {
		if m.kind == soakDeferred {
			inject := e.ipay.Inject
			if strings.Contains(string(m.body), `"provider":"pik"`) {
				inject = e.pik.Inject
			}
			inject(sandbox.Fault{Times: 1, Email: m.email, Status: 503, RetryAfter: soakRetryAfter})
		}
	}
	procs := []*soakProcess{startSoakProcess(t, 0, e.vars), startSoakProcess(t, 1, e.vars)}

	start := time.Now()
	soakPublish(t, e.js, msgs)
	published := time.Since(start)

	ctx, cancel := context.WithTimeout(context.Background(), soakRetryAfter+3*time.Minute)
	defer cancel()
	lastLog := time.Now()
	for {
		n, pending, ackPending, err := consumerProgress(ctx, e.js)
		if err == nil && n >= uint64(len(msgs)) && pending == 0 && ackPending == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("not settled in time: %d events of %d, pending %d, ack pending %d, err %v", n, len(msgs), pending, ackPending, err)
		}
		if time.Since(lastLog) > 30*time.Second {
			t.Logf("%s: %d events of %d, pending %d, ack pending %d", time.Since(start).Round(time.Second), n, len(msgs), pending, ackPending)
			lastLog = time.Now()
		}
		time.Sleep(250 * time.Millisecond)
	}
	took := time.Since(start)

	// Neither instance has exited; each is stopped as it would be in
	// production, by SIGTERM, and exits 0. Its peak resident memory is
	// the kernel's, read just before.
	var redeliveries float64
	hwm := make([]uint64, len(procs))
	for i, p := range procs {
		select {
		case <-p.exited:
			t.Fatalf("instance %d (pid %d) exited: %v", i, p.cmd.Process.Pid, p.err)
		default:
		}
		redeliveries += scrape(t, p.httpAddr)["contactrelay_redeliveries_total"]
		var ok bool
		hwm[i], ok = procStatus(strconv.Itoa(p.cmd.Process.Pid), "VmHWM")
		require.True(t, ok, "instance %d: VmHWM of pid %d", i, p.cmd.Process.Pid)
	}
	for i, p := range procs {
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM), "instance %d: SIGTERM", i)
	}
	for i, p := range procs {
		select {
		case <-p.exited:
			require.NoError(t, p.err, "instance %d exits 0 on SIGTERM", i)
		case <-time.After(time.Minute):
			t.Fatalf("instance %d did not exit within a minute of SIGTERM", i)
		}
	}

	// Every command has its one outcome, and no command has another.
	evs := e.events(t)
	assert.Len(t, evs, len(msgs), "one terminal event per command")
	want := map[string][]soakMsg{}
	for _, m := range msgs {
		want[m.key] = append(want[m.key], m)
	}
	got := byCommand(evs)
	assert.Len(t, got, len(want), "no event for a commandId that was not expected")
	for key, ms := range want {
		soakCheck(t, key, ms, got[key])
	}

	// No contact twice; one for each command that must create one.
	wantEmails := map[string]bool{}
	for _, m := range msgs {
		if m.want.typ == contact.SubjectCreated {
			wantEmails[m.email] = true
		}
	}
	contacts := append(e.ipay.Contacts(), e.pik.Contacts()...)
	byEmail := map[string]int{}
	for _, c := range contacts {
		byEmail[strings.ToLower(c.Email)]++
	}
	dups := 0
	for email, n := range byEmail {
		dups += n - 1
		assert.True(t, wantEmails[email], "a contact for %s, which no command should create", email)
	}
	assert.Zero(t, dups, "no email has two contacts")
	assert.Len(t, byEmail, len(wantEmails), "a contact for each command that must create one")
	assert.Zero(t, e.ipay.Duplicates()+e.pik.Duplicates(), "the sandboxes saw no duplicate")

	// Deliveries: each settled delivery logs its number.
	deferred := map[string]bool{}
	for _, m := range msgs {
		if m.kind == soakDeferred {
			deferred[m.key] = true
		}
	}
	logs := make([]string, len(procs))
	for i, p := range procs {
		logs[i] = p.out.String()
	}
	maxDelivery, redelivered, waited := soakDeliveries(t, logs)
	assert.LessOrEqual(t, maxDelivery, soakMaxDeliver, "no command delivered more than MAX_DELIVER times")
	assert.Equal(t, deferred, redelivered, "only the commands answered with Retry-After were delivered again")
	for id := range deferred {
		assert.GreaterOrEqual(t, waited[id], soakRetryAfter, "%s waited out the Retry-After on the stream", id)
	}
	assert.Equal(t, float64(len(deferred)), redeliveries, "contactrelay_redeliveries_total of both instances")

	for i := range procs {
		assert.Less(t, hwm[i], uint64(soakRSSLimit), "instance %d's peak resident memory (VmHWM) stays under 150 MiB", i)
	}
	self, _ := procStatus("self", "VmHWM")

	kinds := map[string]int{}
	for _, m := range msgs {
		if m.kind != "valid" {
			kinds[m.kind]++
		}
	}
	poison := 0
	for _, n := range kinds {
		poison += n
	}
	t.Logf("%d commands (%d poison of %d kinds) published in %s, settled in %s by 2 instances; "+
		"%d events (%d created), %d contacts for %d create calls, %d redeliveries, highest delivery %d of %d; "+
		"peak RSS (VmHWM) of the instances %.1f MiB and %.1f MiB; of the test process, with the NATS server, the sandboxes and the checks, %.1f MiB",
		len(msgs), poison, len(kinds), published.Round(time.Millisecond), took.Round(time.Millisecond),
		len(evs), soakCount(evs, contact.SubjectCreated), len(contacts), e.ipay.CreateCalls()+e.pik.CreateCalls(),
		int(redeliveries), maxDelivery, soakMaxDeliver,
		float64(hwm[0])/(1<<20), float64(hwm[1])/(1<<20), float64(self)/(1<<20))
}

// soakServiceEnv, set to 1, makes the test binary TestSoakPoisonMix
// re-runs one instance of the service.
const soakServiceEnv = "CONTACTRELAY_SOAK_SERVICE"

// TestSoakServiceProcess is one instance of the service for
// TestSoakPoisonMix, in a process of its own: the test binary re-runs
// itself with CONTACTRELAY_SOAK_SERVICE=1 and the service's environment,
// and the service runs as main runs it until SIGTERM. Otherwise it skips.
func TestSoakServiceProcess(t *testing.T) {
	if os.Getenv(soakServiceEnv) != "1" {
		t.Skip("an instance of TestSoakPoisonMix's service, run only by it, in a process of its own")
	}
	defaultGC([]string{"run"})
	sig, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(sig)
	defer cancel()
	// The soak holds stdin open: should it die, its instances stop too.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	if err := run(ctx, []string{"run"}, os.Getenv, nil, os.Stdout, os.Stderr); err != nil {
		t.Fatalf("the service stopped: %v (exit code %d)", err, exitCode(err))
	}
}

// soakProcess is one instance of the service run by TestSoakPoisonMix in
// a process of its own.
type soakProcess struct {
	cmd      *exec.Cmd
	out      *syncBuffer // its stdout and stderr: the service's JSON log
	httpAddr string      // of /metrics
	exited   chan struct{}
	err      error // what Wait returned, once exited is closed
}

// startSoakProcess re-runs the test binary as an instance of the service
// with the environment vars, and waits until it consumes.
func startSoakProcess(t *testing.T, n int, vars map[string]string) *soakProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSoakServiceProcess$", "-test.timeout=0")
	// The service sees vars and nothing else of this process's
	// environment, bar the Go runtime's own settings.
	cmd.Env = []string{soakServiceEnv + "=1"}
	for _, k := range []string{"GOGC", "GOMEMLIMIT", "GOMAXPROCS", "GODEBUG", "GOTRACEBACK", "GOCOVERDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &soakProcess{cmd: cmd, out: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
		_ = stdin.Close()
		if t.Failed() {
			t.Logf("instance %d (pid %d), %v; its last output:\n%s", n, cmd.Process.Pid, cmd.ProcessState, tail(p.out.String(), 200))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for p.httpAddr == "" {
		select {
		case <-p.exited:
			t.Fatalf("instance %d exited as it started: %v\n%s", n, p.err, tail(p.out.String(), 50))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %d did not start consuming within 30s:\n%s", n, tail(p.out.String(), 50))
		}
		time.Sleep(20 * time.Millisecond)
		p.httpAddr = soakHTTPAddr(p.out.String())
	}
	return p
}

// soakHTTPAddr finds the address of the HTTP server in the service's
// "consuming" log line; "" until it is logged.
func soakHTTPAddr(logs string) string {
	for line := range strings.Lines(logs) {
		var l struct {
			Msg      string `json:"msg"`
			HTTPAddr string `json:"httpAddr"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "consuming" {
			return l.HTTPAddr
		}
	}
	return ""
}

// soakCheck checks the events of one commandId against the commands that
// carry it: one event each, of the kind each must end in.
func soakCheck(t *testing.T, key string, ms []soakMsg, evs []contact.Event) {
	t.Helper()
	short := key
	if len(short) > 40 {
		short = short[:40] + "…"
	}
	if !assert.Len(t, evs, len(ms), "%s (%s): one event per command", short, ms[0].kind) {
		return
	}
	for _, m := range ms {
		i := slices.IndexFunc(evs, func(ev contact.Event) bool {
			if ev.Type != m.want.typ {
				return false
			}
			return ev.Type == contact.SubjectCreated || data[contact.Failed](t, ev).Reason == m.want.reason
		})
		if !assert.GreaterOrEqual(t, i, 0, "%s (%s): want %s %s, have %s", short, m.kind, m.want.typ, m.want.reason, soakTypes(t, evs)) {
			continue
		}
		ev := evs[i]
		evs = slices.Delete(slices.Clone(evs), i, i+1)
		if ev.Type == contact.SubjectCreated {
			assert.Equal(t, m.want.attempts, data[contact.Created](t, ev).Attempts, "%s (%s): create calls", short, m.kind)
			continue
		}
		d := data[contact.Failed](t, ev)
		assert.Zero(t, d.Attempts, "%s (%s): no provider call", short, m.kind)
		if m.want.field != "" {
			assert.True(t, slices.ContainsFunc(d.Errors, func(fe contact.FieldError) bool { return fe.Field == m.want.field }),
				"%s (%s): the errors name %s: %+v", short, m.kind, m.want.field, d.Errors)
		}
		if m.want.reason == contact.ReasonMalformed && m.size > 0 {
			assert.NotEmpty(t, d.CommandRaw, "%s (%s): the raw command is kept", short, m.kind)
			assert.LessOrEqual(t, len(d.CommandRaw), contact.MaxCommandSize, "%s (%s): commandRaw is at most 64 KiB", short, m.kind)
		}
	}
}

func soakTypes(t *testing.T, evs []contact.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
		if ev.Type == contact.SubjectFailed {
			out[i] += " " + string(data[contact.Failed](t, ev).Reason)
		}
	}
	return out
}

func soakCount(evs []contact.Event, typ string) int {
	n := 0
	for _, ev := range evs {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

// soakPublish publishes msgs asynchronously, in order, and fills in the
// key of those named by their stream sequence.
func soakPublish(t *testing.T, js jetstream.JetStream, msgs []soakMsg) {
	t.Helper()
	const batch = 500
	type sent struct {
		i int
		f jetstream.PubAckFuture
	}
	acks := make([]sent, 0, batch)
	wait := func() {
		for _, s := range acks {
			select {
			case ack := <-s.f.Ok():
				require.False(t, ack.Duplicate, "command %d (%s) is not taken for a duplicate", s.i, msgs[s.i].kind)
				if msgs[s.i].key == "" {
					msgs[s.i].key = fmt.Sprintf("%s:%d", provision.CommandStream, ack.Sequence)
				}
			case err := <-s.f.Err():
				require.NoError(t, err, "publish command %d (%s)", s.i, msgs[s.i].kind)
			case <-time.After(30 * time.Second):
				t.Fatal("publish not acknowledged")
			}
		}
		acks = acks[:0]
	}
	for i, m := range msgs {
		msg := nats.NewMsg(contact.SubjectCreate)
		msg.Data = m.body
		if m.msgID != "" {
			msg.Header.Set(contact.HeaderMsgID, m.msgID)
		}
		f, err := js.PublishMsgAsync(msg)
		require.NoError(t, err)
		msgs[i].size, msgs[i].body = len(m.body), nil
		if acks = append(acks, sent{i, f}); len(acks) == batch {
			wait()
		}
	}
	wait()
}

// soakDeliveries reads the instances' logs, one line per settled delivery:
// the highest delivery number, the commandIds delivered more than once, and
// how long each was asked to wait before its next delivery.
func soakDeliveries(t *testing.T, logs []string) (highest int, redelivered map[string]bool, waited map[string]time.Duration) {
	t.Helper()
	redelivered, waited = map[string]bool{}, map[string]time.Duration{}
	for _, l := range logs {
		sc := bufio.NewScanner(strings.NewReader(l))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var line struct {
				Msg       string  `json:"msg"`
				CommandID string  `json:"commandId"`
				Delivery  int     `json:"delivery"`
				Delay     float64 `json:"delay"` // nanoseconds
			}
			if json.Unmarshal(sc.Bytes(), &line) != nil || line.Delivery == 0 {
				continue
			}
			highest = max(highest, line.Delivery)
			if line.Delivery > 1 {
				redelivered[line.CommandID] = true
			}
			if line.Msg == "will retry" {
				waited[line.CommandID] = max(waited[line.CommandID], time.Duration(line.Delay))
			}
		}
		require.NoError(t, sc.Err())
	}
	return highest, redelivered, waited
}

// procStatus reads one kB field of /proc/<pid>/status, in bytes; pid may
// be "self".
func procStatus(pid, field string) (uint64, bool) {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}
