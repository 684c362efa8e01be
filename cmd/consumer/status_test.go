package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/console"
	"github.com/contactrelay/contactrelay/internal/sandbox"
	"github.com/contactrelay/contactrelay/internal/status"
)

// metricValue reads one series of an instance's /metrics; series is the
// metric's name with its labels as exposed, e.g. `x{provider="pik"}`.
func metricValue(t testing.TB, svc *instance, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + svc.httpAddr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return f
		}
	}
	t.Fatalf("no series %s in /metrics", series)
	return 0
}

// statusRow is one provider of an instance on the console's Status page.
type statusRow struct {
	circuit  string
	inFlight int
	ids      []string // the commandIds listed in flight
}

var (
	statusRowRE     = regexp.MustCompile(`(?s)<tr><td>([^<]+)</td><td class="circuit-[^"]*">([^<]*)</td><td>.*?</td><td class="num in-flight">(\d+)</td>\s*<td>(.*?)</td></tr>`)
	statusCIDRE     = regexp.MustCompile(`<a class="cid" href="[^"]*">([^<]+)</a>`)
	statusPausesRE  = regexp.MustCompile(`(?s)<ul id="pauses">(.*?)</ul>`)
	statusPausedRE  = regexp.MustCompile(`<strong>([^<]+)</strong> paused`)
	statusInstances = regexp.MustCompile(`id="instances">(\d+)<`)
)

// readStatusPage reads the console's Status page at base: the instances
// that answered, each provider's row (of the one instance), and the
// providers listed as paused.
func readStatusPage(t testing.TB, base string) (instances int, rows map[string]statusRow, paused []string) {
	t.Helper()
	resp, err := http.Get(base + "/status")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	page := string(b)
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	m := statusInstances.FindStringSubmatch(page)
	require.NotNil(t, m, "the page says how many instances answered: %s", page)
	instances, err = strconv.Atoi(m[1])
	require.NoError(t, err)
	rows = map[string]statusRow{}
	for _, m := range statusRowRE.FindAllStringSubmatch(page, -1) {
		n, err := strconv.Atoi(m[3])
		require.NoError(t, err)
		r := statusRow{circuit: m[2], inFlight: n}
		for _, c := range statusCIDRE.FindAllStringSubmatch(m[4], -1) {
			r.ids = append(r.ids, c[1])
		}
		slices.Sort(r.ids)
		rows[m[1]] = r
	}
	if m := statusPausesRE.FindStringSubmatch(page); m != nil {
		for _, p := range statusPausedRE.FindAllStringSubmatch(m[1], -1) {
			paused = append(paused, p[1])
		}
	}
	return instances, rows, paused
}

// With commands in flight at a slow provider, 'consumer status' and the
// console's Status page report what /metrics does: the commands in flight
// (and which), the circuits, the pauses.
func TestStatusAgreesWithMetrics(t *testing.T) {
	e := newTestEnv(t, func(c *sandbox.InstantPayConfig) { c.Latency = 2 * time.Second })
	e.vars["PROVIDER_TIMEOUT"] = "10s"
	e.vars["RETRY_MAX_ELAPSED"] = "10s" // a failed call is retried within its delivery
	e.vars["CIRCUIT_FAILURES"] = "10"
	e.vars["LOG_LEVEL"] = "info"
	svc := e.start(t)
	e.ipay.Inject(sandbox.Fault{Times: 5, Status: 503})
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"pause", "--reason", "test", "pik"}, e.getenv, nil, &out, &out), out.String())
	var ids []string
	for i := range 5 {
		ids = append(ids, fmt.Sprintf("slow-%d", i))
		e.publish(t, command(ids[i]))
	}
	require.Eventually(t, func() bool {
		return metricValue(t, svc, "contactrelay_commands_in_flight") == 5 && metricValue(t, svc, `contactrelay_provider_paused{provider="pik"}`) == 1
	}, 10*time.Second, 10*time.Millisecond, "five commands in flight at the slow InstantPay, and PIK's pause seen")

	// The console's Status page, asked while they are in flight, shows
	// the figures /metrics shows (read before and after the page, to be
	// sure they held while it was made).
	base, _ := startConsoleWith(t, e, console.Config{NoAuth: true, Addr: "127.0.0.1:8081"})
	states := map[float64]string{0: "closed", 1: "half-open", 2: "open"}
	providers := []string{"instantpay", "pik"}
	metricsNow := func() map[string]float64 {
		m := map[string]float64{"in flight": metricValue(t, svc, "contactrelay_commands_in_flight")}
		for _, p := range providers {
			m["circuit "+p] = metricValue(t, svc, `contactrelay_circuit_state{provider="`+p+`"}`)
			m["paused "+p] = metricValue(t, svc, `contactrelay_provider_paused{provider="`+p+`"}`)
		}
		return m
	}
	before := metricsNow()
	instances, rows, paused := readStatusPage(t, base)
	require.Equal(t, before, metricsNow(), "the figures held while the page was made")
	assert.Equal(t, 1, instances, "the one instance answered")
	onPage := 0
	for _, r := range rows {
		onPage += r.inFlight
	}
	assert.EqualValues(t, before["in flight"], onPage, "in flight on the page, as contactrelay_commands_in_flight says")
	assert.Equal(t, 5, rows["instantpay"].inFlight)
	assert.Equal(t, ids, rows["instantpay"].ids, "the commandIds in flight on the page")
	for _, p := range providers {
		require.Contains(t, rows, p, "a row for %s", p)
		assert.Equal(t, states[before["circuit "+p]], rows[p].circuit, "%s's circuit on the page as the metric says", p)
		assert.Equal(t, before["paused "+p] == 1, slices.Contains(paused, p), "%s paused on the page as contactrelay_provider_paused says", p)
	}

	out.Reset()
	require.NoError(t, run(context.Background(), []string{"status", "--json"}, e.getenv, nil, &out, &out))
	var s status.Snapshot
	require.NoError(t, json.Unmarshal(out.Bytes(), &s), out.String())
	require.Len(t, s.Instances, 1, "the one instance answered")
	in := s.Instances[0]
	assert.Equal(t, 5, in.InFlight["instantpay"], "as contactrelay_commands_in_flight says")
	assert.Equal(t, 5, s.InFlight["instantpay"])
	var got []string
	for _, c := range in.Commands["instantpay"] {
		got = append(got, c.CommandID)
	}
	slices.Sort(got)
	assert.Equal(t, ids, got, "the commandIds in flight")
	for _, p := range providers {
		assert.Equal(t, states[metricValue(t, svc, `contactrelay_circuit_state{provider="`+p+`"}`)], in.Circuits[p].State, "%s's circuit as the metric says", p)
		assert.False(t, in.Circuits[p].Since.IsZero())
	}
	require.Len(t, s.Pauses, 1)
	assert.Equal(t, "pik", s.Pauses[0].Provider)
	require.Len(t, in.Pauses, 1, "the instance reports the pause it knows, as contactrelay_provider_paused does")
	assert.Equal(t, "pik", in.Pauses[0].Provider)
	assert.EqualValues(t, 5, s.AckPending, "delivered, not settled")
	assert.False(t, s.OldestWaiting.IsZero(), "the oldest command not settled")

	out.Reset()
	require.NoError(t, run(context.Background(), []string{"status"}, e.getenv, nil, &out, &out))
	assert.Regexp(t, `in flight\s+instantpay 5\n`, out.String())
	assert.Contains(t, out.String(), "pik paused")
	assert.Contains(t, out.String(), "slow-0")

	// Each command's calls so far: the first answers were 503s.
	require.Eventually(t, func() bool {
		out.Reset()
		require.NoError(t, run(context.Background(), []string{"status", "--json"}, e.getenv, nil, &out, &out))
		s = status.Snapshot{}
		require.NoError(t, json.Unmarshal(out.Bytes(), &s), out.String())
		if len(s.Instances) != 1 || len(s.Instances[0].Commands["instantpay"]) != 5 {
			return false
		}
		for _, c := range s.Instances[0].Commands["instantpay"] {
			if len(c.Attempts) == 0 {
				return false
			}
			a := c.Attempts[0]
			if a.Op != "create" || a.Class != "transient" || a.At.IsZero() || c.NextTry.IsZero() {
				return false
			}
		}
		return true
	}, 10*time.Second, 50*time.Millisecond, "each command in flight shows its first call, transient, and its next try: %s", &out)

	// Once they are created, the outcomes per minute add up to what
	// contactrelay_outcomes_total counted.
	created := `contactrelay_outcomes_total{event="contact.created",provider="instantpay",reason=""}`
	require.Eventually(t, func() bool { return metricValue(t, svc, created) == 5 }, 20*time.Second, 20*time.Millisecond)
	out.Reset()
	require.NoError(t, run(context.Background(), []string{"status", "--json"}, e.getenv, nil, &out, &out))
	s = status.Snapshot{}
	require.NoError(t, json.Unmarshal(out.Bytes(), &s), out.String())
	var sum uint64
	for _, m := range s.Minutes {
		sum += m.Created
	}
	assert.EqualValues(t, metricValue(t, svc, created), sum, "created per minute over the hour, as outcomes_total says")
	assert.Len(t, s.Minutes, 60)
	assert.Zero(t, s.InFlight["instantpay"], "nothing in flight any more")
}
