package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/audit"
	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/provision"
)

// cli runs the command line as main does, with the test's environment,
// and returns what it wrote.
func (e *testEnv) cli(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err = run(ctx, args, e.getenv, strings.NewReader(""), &out, &errOut)
	t.Logf("consumer %s\n%s%s", strings.Join(args, " "), out.String(), errOut.String())
	return out.String(), errOut.String(), err
}

// commandsStored returns how many messages the command stream holds.
func (e *testEnv) commandsStored(t *testing.T) uint64 {
	t.Helper()
	s, err := e.js.Stream(context.Background(), provision.CommandStream)
	require.NoError(t, err)
	info, err := s.Info(context.Background())
	require.NoError(t, err)
	// The stream is a work queue: settled commands are gone, and its last
	// sequence counts every command it stored.
	return info.State.LastSeq
}

// failedIDs returns the id of each commandId's failed event.
func failedIDs(evs []contact.Event) map[string]string {
	out := map[string]string{}
	for _, ev := range evs {
		if ev.Type == contact.SubjectFailed {
			out[ev.Subject] = ev.ID
		}
	}
	return out
}

// invalidCommand is a command that fails as invalid: email and mobile
// break their rules.
func invalidCommand(id string) string {
	return fmt.Sprintf(`{"commandId":%q,"name":"Ravi Kumar","email":"ravi@","mobile":"12","tagId":%q}`, id, tagID)
}

// TestReplayAfterAnOutage follows an operator through an outage: the
// providers are down, commands fail as exhausted; the failures are listed
// and filtered, a dry run sends nothing; the providers heal, a replay
// creates each contact once, and replaying again creates nothing.
func TestReplayAfterAnOutage(t *testing.T) {
	e := newTestEnv(t)
	e.vars["MAX_DELIVER"] = "1"
	e.vars["CIRCUIT_FAILURES"] = "1000" // the replay must not meet a circuit still open from the outage
	e.ipay.SetDown(true)
	e.pik.SetDown(true)
	e.start(t)
	ipayIDs, pikIDs := ids("ip", 20), ids("pk", 2)
	for _, id := range ipayIDs {
		e.publish(t, command(id))
	}
	for _, id := range pikIDs {
		e.publish(t, command(id, `"provider":"pik"`))
	}
	e.publish(t, invalidCommand("inv-1"))
	failed := failedIDs(e.awaitEvents(t, 23, 20*time.Second))
	require.Len(t, failed, 23)

	t.Run("list", func(t *testing.T) {
		out, _, err := e.cli(t, "failures")
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		assert.Regexp(t, `^TIME +COMMAND ID +PROVIDER +REASON +RETRYABLE +MESSAGE$`, lines[0])
		assert.Regexp(t, `(?m)^\S+Z +inv-1 +instantpay +invalid +no +the command breaks 2 rules: email must be a valid`, out)
		assert.Len(t, lines, 1+23+2, "a header, 23 rows, a blank line and the count")
		assert.Equal(t, "23 open failures match: exhausted 22, invalid 1", lines[len(lines)-1])
		assert.NotContains(t, out, "@example.com", "no email in the list")
	})
	t.Run("filters", func(t *testing.T) {
		rows := func(out string) []string {
			var ids []string
			for _, l := range strings.Split(out, "\n") {
				if f := strings.Fields(l); len(f) > 1 && strings.HasSuffix(f[0], "Z") {
					ids = append(ids, f[1])
				}
			}
			return ids
		}
		tests := []struct {
			name  string
			args  []string
			want  []string // the rows' commandIds, in any order
			count string
		}{
			{"reason", []string{"--reason", "invalid"}, []string{"inv-1"}, "1 open failure matches: invalid 1"},
			{"reasons", []string{"--reason", "invalid,rejected", "--reason", "unroutable"}, []string{"inv-1"}, "1 open failure matches: invalid 1"},
			{"provider", []string{"--provider", "pik"}, []string{"pk-0", "pk-1"}, "2 open failures match: exhausted 2"},
			{"command id", []string{"--command-id", "ip-7", "--json"}, nil, ""},
			{"since a duration", []string{"--since", "1h", "--provider", "pik"}, []string{"pk-0", "pk-1"}, "2 open failures match: exhausted 2"},
			{"until long ago", []string{"--until", "2001-01-01"}, []string{}, "no open failures match"},
			{"since later", []string{"--since", time.Now().Add(time.Hour).Format(time.RFC3339)}, []string{}, "no open failures match"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				out, _, err := e.cli(t, append([]string{"failures"}, tt.args...)...)
				require.NoError(t, err)
				if tt.want != nil {
					assert.ElementsMatch(t, tt.want, rows(out))
					assert.Contains(t, out, tt.count)
				}
			})
		}
		t.Run("limit", func(t *testing.T) {
			out, _, err := e.cli(t, "failures", "--limit", "2")
			require.NoError(t, err)
			got := rows(out)
			all, _, err := e.cli(t, "failures")
			require.NoError(t, err)
			assert.Equal(t, rows(all)[:2], got, "the two newest")
			assert.Contains(t, out, "23 open failures match: exhausted 22, invalid 1; the 2 newest shown (--limit)")
		})
	})
	t.Run("one failure whole", func(t *testing.T) {
		out, _, err := e.cli(t, "failures", "--command-id", "ip-7")
		require.NoError(t, err)
		for _, want := range []string{
			"contact.failed " + failed["ip-7"], "exhausted (retryable)", "HTTP 503",
			"no: this is the command's newest outcome", "consumer replay --command-id ip-7",
			`"email": "i***@example.com"`, `"mobile": "***10"`,
		} {
			assert.Contains(t, out, want)
		}
		assert.NotContains(t, out, "ip-7@example.com", "masked")
		out, _, err = e.cli(t, "failures", "--command-id", "ip-7", "--unmask")
		require.NoError(t, err)
		assert.Contains(t, out, `"email": "ip-7@example.com"`, "--unmask shows it")

		out, stderr, err := e.cli(t, "failures", "--json", "--provider", "pik")
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 2)
		for _, line := range lines {
			var f map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &f))
			id, _ := f["commandId"].(string)
			assert.Contains(t, pikIDs, id)
			assert.Equal(t, failed[id], f["id"])
			assert.Equal(t, "pik", f["provider"])
		}
		assert.Equal(t, "2 open failures match: exhausted 2\n", stderr, "the count goes to stderr with --json")
	})

	t.Run("dry run sends nothing", func(t *testing.T) {
		stored, calls := e.commandsStored(t), e.ipay.CreateCalls()
		out, _, err := e.cli(t, "replay", "--dry-run")
		require.NoError(t, err)
		assert.Equal(t, 22, strings.Count(out, "would replay "))
		assert.Contains(t, out, "would skip inv-1 (failure "+failed["inv-1"]+", invalid): not retryable")
		assert.Contains(t, out, "Nats-Msg-Id: replay:"+failed["ip-3"])
		assert.Contains(t, out, "dry run, nothing sent: 23 selected: 22 would be replayed, 1 skipped, 0 failed to publish")
		// A publish would have been stored before the command returned.
		assert.Equal(t, stored, e.commandsStored(t), "nothing published")
		assert.Equal(t, calls, e.ipay.CreateCalls())
		assert.Len(t, e.events(t), 23)
	})

	e.ipay.SetDown(false)
	e.pik.SetDown(false)
	callsBefore := e.ipay.CreateCalls() + e.pik.CreateCalls()

	t.Run("replay creates each contact once", func(t *testing.T) {
		start := time.Now()
		out, _, err := e.cli(t, "replay", "--rate", "40")
		took := time.Since(start)
		require.NoError(t, err)
		assert.Contains(t, out, "23 selected: 22 replayed, 1 skipped, 0 failed to publish")
		assert.Contains(t, out, "skipped 1: not retryable")
		// 22 commands at 40 a second: the first at once, 21 gaps of 25ms.
		assert.GreaterOrEqual(t, took, 500*time.Millisecond, "the rate limit holds")
		t.Logf("22 replays at --rate 40 took %s", took)

		evs := e.awaitEvents(t, 23+22, 20*time.Second)
		by := byCommand(evs)
		for _, id := range append(ipayIDs, pikIDs...) {
			require.Len(t, by[id], 2, "%s: the failure and the replay's outcome", id)
			ev := by[id][1]
			require.Equal(t, contact.SubjectCreated, ev.Type, id)
			assert.Equal(t, contact.EventID(id, failed[id], contact.SubjectCreated), ev.ID, "a new generation's id")
			d := data[contact.Created](t, ev)
			assert.Equal(t, failed[id], d.ReplayOf, id)
			assert.Equal(t, 1, d.Attempts, "one create call in the replay's generation")
		}
		assert.Len(t, e.ipay.Contacts(), len(ipayIDs))
		assert.Len(t, e.pik.Contacts(), len(pikIDs))
		assert.Zero(t, e.ipay.Duplicates()+e.pik.Duplicates())
		assert.Equal(t, callsBefore+len(ipayIDs)+len(pikIDs), e.ipay.CreateCalls()+e.pik.CreateCalls(), "one create call each")
	})

	t.Run("no longer open", func(t *testing.T) {
		out, _, err := e.cli(t, "failures")
		require.NoError(t, err)
		assert.Equal(t, "1 open failure matches: invalid 1\n", lastLine(out), "only the invalid command is left open")
		out, _, err = e.cli(t, "failures", "--provider", "pik")
		require.NoError(t, err)
		assert.Equal(t, "no open failures match\n", out)
	})
	t.Run("listed as superseded in the history", func(t *testing.T) {
		out, _, err := e.cli(t, "failures", "--history", "--provider", "pik")
		require.NoError(t, err)
		assert.Regexp(t, `pk-1 +pik +exhausted +yes +by created`, out)
		assert.Contains(t, out, "2 failures match: exhausted 2; 2 superseded (by a later contact.created 2)")
	})

	seen := e.watchPublishes(t)
	calls := e.ipay.CreateCalls() + e.pik.CreateCalls()
	t.Run("a second replay creates nothing", func(t *testing.T) {
		stored := e.commandsStored(t)
		out, _, err := e.cli(t, "replay")
		require.NoError(t, err)
		assert.Contains(t, out, "1 selected: 0 replayed, 1 skipped, 0 failed to publish", "the open set holds the invalid command only")
		out, _, err = e.cli(t, "replay", "--history")
		require.NoError(t, err)
		assert.Contains(t, out, "23 selected: 0 replayed, 23 skipped, 0 failed to publish")
		assert.Contains(t, out, "skipped 22: superseded by a later contact.created")

		out, _, err = e.cli(t, "replay", "--history", "--include-superseded", "--rate", "1000")
		require.NoError(t, err)
		assert.Contains(t, out, "23 selected: 0 replayed, 22 already sent, 1 skipped, 0 failed to publish", "counted apart from what was sent")
		assert.Contains(t, out, "already sent 22: the failure was replayed before")
		// Their acks came back before the command returned: none was stored,
		// so the consumer has nothing to deliver.
		assert.Equal(t, stored, e.commandsStored(t), "the stream stored none of them")
		assert.Empty(t, seen(), "nothing reached the consumer")
		assert.Equal(t, calls, e.ipay.CreateCalls()+e.pik.CreateCalls())
	})
	t.Run("after the duplicate window, contact.created repeats from the record", func(t *testing.T) {
		// Shrink the command stream's window, as if two minutes had passed.
		s, err := e.js.Stream(context.Background(), provision.CommandStream)
		require.NoError(t, err)
		cfg := s.CachedInfo().Config
		// Twice: the server lets its de-duplication timer fire at once on
		// an update, before it takes the new window (nats-server
		// stream.go, update: ddtmr.Reset, then ddwin set later), so a
		// timer that fires in between purges by the old two minutes and
		// waits that long; on the second update the window it fires with
		// is already the short one.
		for _, d := range []time.Duration{100 * time.Millisecond, 101 * time.Millisecond} {
			cfg.Duplicates = d
			_, err = e.js.UpdateStream(context.Background(), cfg)
			require.NoError(t, err)
		}

		// Until the stream forgets their message ids, the replays are
		// dropped as duplicates, and have no effect.
		var out string
		require.Eventually(t, func() bool {
			out, _, err = e.cli(t, "replay", "--history", "--include-superseded", "--provider", "pik")
			return err != nil || !strings.Contains(out, "already sent 2")
		}, 10*time.Second, 50*time.Millisecond, "the command stream forgets the replays' message ids")
		require.NoError(t, err)
		assert.Contains(t, out, "2 selected: 2 replayed")
		assert.NotContains(t, out, "already sent")
		require.Eventually(t, func() bool { return len(seen()) == 2 }, 10*time.Second, 10*time.Millisecond)
		for _, ev := range seen() {
			assert.Equal(t, contact.SubjectCreated, ev.Type)
			assert.Equal(t, contact.EventID(ev.Subject, failed[ev.Subject], contact.SubjectCreated), ev.ID, "the same event as the first replay's")
		}
		assert.Equal(t, calls, e.ipay.CreateCalls()+e.pik.CreateCalls(), "no create call: the record answers")
	})
}

func TestReplayRepairsAnInvalidCommand(t *testing.T) {
	e := newTestEnv(t)
	e.start(t)
	e.publish(t, invalidCommand("inv-r"))
	e.publish(t, command("ok-1"))
	failed := failedIDs(e.awaitEvents(t, 2, 10*time.Second))

	t.Run("an invalid repair is refused", func(t *testing.T) {
		stored := e.commandsStored(t)
		_, stderr, err := e.cli(t, "replay", "--command-id", "inv-r", "--set", "email=ravi@example.com")
		assert.Equal(t, 1, exitCode(err))
		assert.Contains(t, stderr, "repair of inv-r refused, nothing was published")
		assert.Contains(t, stderr, "mobile: mobile must be 10 to 15 digits")
		assert.NotContains(t, stderr, "email:", "the repaired field is fine")
		assert.Equal(t, stored, e.commandsStored(t), "nothing published")
	})
	t.Run("a valid repair creates the contact", func(t *testing.T) {
		out, _, err := e.cli(t, "replay", "--command-id", "inv-r",
			"--set", "email=ravi@example.com", "--set", "mobile=+919812345678", "--set", "metadata.repairedBy=ops")
		require.NoError(t, err, "an invalid failure is repaired without --all")
		assert.Contains(t, out, "1 selected: 1 replayed")
		evs := byCommand(e.awaitEvents(t, 3, 10*time.Second))
		require.Len(t, evs["inv-r"], 2)
		ev := evs["inv-r"][1]
		require.Equal(t, contact.SubjectCreated, ev.Type)
		d := data[contact.Created](t, ev)
		assert.Equal(t, failed["inv-r"], d.ReplayOf)
		assert.Equal(t, map[string]string{"repairedBy": "ops"}, d.Metadata)
		var stored []string
		for _, c := range e.ipay.Contacts() {
			stored = append(stored, c.Email+" "+c.Mobile)
		}
		assert.Contains(t, stored, "ravi@example.com +919812345678", "the contact has the repaired fields")
	})
	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"replay", "--set", "email=x@example.com"},                        // no --command-id
			{"replay", "--command-id", "inv-r", "--set", "commandId=other"},   // the identity
			{"replay", "--command-id", "inv-r", "--set", "email"},             // no value
			{"replay", "--command-id", "inv-r", "--set", "pik..firstName=Jo"}, // empty part
		} {
			_, _, err := e.cli(t, args...)
			assert.Equal(t, 2, exitCode(err), "%v is a usage error", args)
		}
		_, stderr, err := e.cli(t, "replay", "--command-id", "nobody", "--set", "name=x")
		assert.Equal(t, 1, exitCode(err), "nothing to repair")
		assert.Contains(t, stderr, "nothing to repair")
	})
}

func TestFailuresAndReplayExitCodes(t *testing.T) {
	e := newTestEnv(t)
	t.Run("no streams", func(t *testing.T) {
		for _, cmd := range []string{"failures", "replay"} {
			_, _, err := e.cli(t, cmd)
			assert.Equal(t, 2, exitCode(err), cmd)
			assert.ErrorIs(t, err, errNoStreams, cmd)
		}
	})
	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"failures", "--reason", "exausted"},
			{"failures", "--since", "yesterday"},
			{"failures", "--since", "1h", "--until", "2h"},
			{"failures", "--limit", "-1"},
			{"failures", "extra"},
			{"failures", "--no-such-flag"},
			{"replay", "--rate", "0"},
			{"replay", "--until", "soon"},
		} {
			_, _, err := e.cli(t, args...)
			assert.Equal(t, 2, exitCode(err), "%v is a usage error", args)
		}
	})

	// A command stream that takes no contact.create: every publish fails.
	ctx := context.Background()
	_, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: provision.CommandStream, Subjects: []string{"elsewhere"}})
	require.NoError(t, err)
	_, err = e.js.CreateStream(ctx, jetstream.StreamConfig{Name: provision.EventStream, Subjects: []string{contact.SubjectCreated, contact.SubjectFailed}})
	require.NoError(t, err)
	_, err = e.js.CreateStream(ctx, audit.StreamConfig(1, 0)) // a replay is audited before it sends
	require.NoError(t, err)
	ev, err := events.NewEvent("", contact.SubjectFailed, "x-1", "", time.Now(), contact.Failed{
		CommandID: "x-1", Reason: contact.ReasonExhausted, Retryable: true, Command: json.RawMessage(command("x-1")),
	})
	require.NoError(t, err)
	body, err := json.Marshal(ev)
	require.NoError(t, err)
	_, err = e.js.PublishMsg(ctx, &nats.Msg{Subject: contact.SubjectFailed, Data: body})
	require.NoError(t, err)

	t.Run("a failed publish", func(t *testing.T) {
		out, stderr, err := e.cli(t, "replay", "--history")
		assert.Equal(t, 1, exitCode(err))
		assert.Contains(t, stderr, "failed to publish x-1")
		assert.Contains(t, out, "1 selected: 0 replayed, 0 skipped, 1 failed to publish")
	})
	t.Run("a command without failures", func(t *testing.T) {
		_, stderr, err := e.cli(t, "failures", "--history", "--command-id", "nobody")
		assert.Equal(t, 1, exitCode(err))
		assert.Contains(t, stderr, "no contact.failed event of commandId nobody")
	})
	t.Run("nothing selected is no error", func(t *testing.T) {
		out, _, err := e.cli(t, "replay", "--history", "--reason", "invalid")
		require.NoError(t, err)
		assert.Contains(t, out, "0 selected")
	})
}

// lastLine returns the last line of out, with its line break.
func lastLine(out string) string {
	lines := strings.SplitAfter(strings.TrimSuffix(out, "\n"), "\n")
	return lines[len(lines)-1] + "\n"
}
