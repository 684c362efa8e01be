package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
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

// These tests run the service on a three-node JetStream cluster, as
// deploy/ does: R3 streams and bucket, several instances sharing the durable
// consumer, and the loss of a NATS server and of an instance mid-run.

// replicated are the streams that must have three replicas after
// 'setup --replicas 3'; KV_CONTACT_RECORDS is the record bucket's.
var replicated = []string{provision.CommandStream, provision.EventStream, "KV_" + provision.RecordBucket}

// assertReplicas checks that each replicated stream, and the durable
// consumer, has want replicas.
func assertReplicas(t *testing.T, js jetstream.JetStream, want int, when string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, name := range replicated {
		s, err := js.Stream(ctx, name)
		require.NoError(t, err, name)
		info := s.CachedInfo()
		assert.Equal(t, want, info.Config.Replicas, "%s: %s has %d replicas", when, name, want)
		if assert.NotNil(t, info.Cluster, name) {
			assert.Len(t, info.Cluster.Replicas, want-1, "%s: %s has a leader and %d followers", when, name, want-1)
		}
	}
	c, err := js.Consumer(ctx, provision.CommandStream, provision.Durable)
	require.NoError(t, err)
	if info := c.CachedInfo(); assert.NotNil(t, info.Cluster) {
		assert.Len(t, info.Cluster.Replicas, want-1, "%s: the durable consumer is replicated like its stream", when)
	}
}

func TestClusterSetupReplicas(t *testing.T) {
	e := newClusterTestEnv(t, 3)
	var out strings.Builder
	require.NoError(t, run(t.Context(), []string{"setup", "--replicas", "3"}, e.getenv, nil, &out, io.Discard))
	assert.Contains(t, out.String(), "(replicas 3)")
	assertReplicas(t, e.js, 3, "after setup --replicas 3")

	// The service's own setup asks for one replica; it must not scale the
	// streams or the bucket down (an earlier version did, to the bucket).
	e.start(t).stop()
	assertReplicas(t, e.js, 3, "after the service started")
	require.NoError(t, run(t.Context(), []string{"setup"}, e.getenv, nil, io.Discard, io.Discard))
	assertReplicas(t, e.js, 3, "after a plain setup")
}

// TestClusterScaleOutSurvivesLosingANodeAndAnInstance runs three instances
// on a three-node cluster through a few thousand commands for both
// providers, stops the NATS server that leads the durable consumer a
// quarter of the way through and kills an instance half way, and checks
// the guarantee: one terminal event per command, one contact per command,
// no duplicate. CONTACTRELAY_SOAK=1 makes it 10000 commands (under a
// minute on two cores with -race), CONTACTRELAY_CLUSTER_COMMANDS=N any
// number.
func TestClusterScaleOutSurvivesLosingANodeAndAnInstance(t *testing.T) {
	n := 2000
	if os.Getenv("CONTACTRELAY_SOAK") == "1" {
		n = 10000
	}
	if v, err := strconv.Atoi(os.Getenv("CONTACTRELAY_CLUSTER_COMMANDS")); err == nil && v > 0 {
		n = v
	}
	e := newClusterTestEnv(t, 3)
	e.quietLogs = true // thousands of lines; shown (the last ones) on failure
	e.vars["CONCURRENCY"] = "32"
	e.vars["MAX_DELIVER"] = "10" // the default: record writes failing during an election spend deliveries
	e.vars["ACK_WAIT"] = "5s"    // how soon the killed instance's commands come back
	e.vars["PROVIDER_TIMEOUT"] = "2s"
	e.vars["RETRY_INITIAL_INTERVAL"] = "20ms"
	e.vars["RETRY_MAX_INTERVAL"] = "200ms"
	e.vars["RETRY_MAX_ELAPSED"] = "2s"
	e.ipay.Inject(sandbox.Fault{Latency: 5 * time.Millisecond})
	e.pik.Inject(sandbox.Fault{Latency: 5 * time.Millisecond})

	require.NoError(t, run(t.Context(), []string{"setup", "--replicas", "3"}, e.getenv, nil, io.Discard, io.Discard))
	svcs := []*instance{e.start(t), e.start(t), e.start(t)}
	assertReplicas(t, e.js, 3, "with three instances running")

	cmds := ids("cluster", n)
	start := time.Now()
	publishAll(t, e.js, cmds)
	t.Logf("published %d commands in %s", n, time.Since(start).Round(time.Millisecond))

	creates := func() int { return e.ipay.CreateCalls() + e.pik.CreateCalls() }
	require.Eventually(t, func() bool { return creates() >= n/4 }, 60*time.Second, 5*time.Millisecond)

	// Lose the server that leads the durable consumer: the pull requests
	// of every instance wait there, and die with it.
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	leaders := groupLeaders(ctx, e.js)
	victim := e.cluster.Index(leaders[provision.Durable])
	require.GreaterOrEqual(t, victim, 0, "leaders %v", leaders)
	name := e.cluster.Servers()[victim].Name()
	var led []string
	for group, l := range leaders {
		if l == name {
			led = append(led, group)
		}
	}
	slices.Sort(led)
	if e.cluster.Leader() == victim {
		led = append(led, "JetStream meta")
	}
	var onVictim []int
	for i, s := range svcs {
		if s.nc.ConnectedServerName() == name {
			onVictim = append(onVictim, i)
		}
	}
	t.Logf("%s: stopping NATS server %s, leader of %v; instances connected to it: %v (of 0..2)",
		time.Since(start).Round(time.Millisecond), name, led, onVictim)
	e.cluster.Stop(victim)

	require.Eventually(t, func() bool { return creates() >= n/2 }, 60*time.Second, 5*time.Millisecond)
	t.Logf("%s: killing instance 1 (create calls so far %d)", time.Since(start).Round(time.Millisecond), creates())
	svcs[1].kill(t)
	createdBy := func(s *instance) int { return strings.Count(s.logs.String(), `"msg":"contact created"`) }
	atKill := []int{createdBy(svcs[0]), createdBy(svcs[1]), createdBy(svcs[2])}

	// Done when every command has its event and none is left on the durable.
	deadline, _ := ctx.Deadline()
	settle := func(total int) {
		t.Helper()
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			msgs, pending, ackPending, err := consumerProgress(ctx, e.js)
			require.NoError(c, err)
			assert.GreaterOrEqual(c, msgs, uint64(total), "events")
			assert.Zero(c, pending, "commands left to deliver")
			assert.Zero(c, ackPending, "commands delivered and not yet acknowledged")
		}, time.Until(deadline), 100*time.Millisecond, "every command settles in time")
	}
	settle(n)
	took := time.Since(start)

	// Both survivors take work after the faults. A pull request the lost
	// leader held can leave an instance idle for a few seconds (see
	// TestClusterResumesAfterLosingTheConsumerLeader), which may be longer
	// than the rest of the batch takes: so small waves follow until each
	// survivor has created a contact since the kill, or the deadline says
	// one never came back.
	for wave := 0; createdBy(svcs[0]) <= atKill[0] || createdBy(svcs[2]) <= atKill[2]; wave++ {
		require.Less(t, time.Now(), deadline, "instances 0 and 2 keep consuming after both faults: created %d and %d since the kill",
			createdBy(svcs[0])-atKill[0], createdBy(svcs[2])-atKill[2])
		more := ids(fmt.Sprintf("cluster-wave%d", wave), 64)
		publishAll(t, e.js, more)
		cmds = append(cmds, more...)
		settle(len(cmds))
	}

	evs := e.events(t)
	assertExactlyOnce(t, evs, cmds)
	for _, ev := range evs {
		assert.Equal(t, contact.SubjectCreated, ev.Type, "%s: every command is created (nothing failed for NATS trouble)", ev.Subject)
	}
	assert.Len(t, e.ipay.Contacts(), len(cmds)/2, "one InstantPay contact per command")
	assert.Len(t, e.pik.Contacts(), len(cmds)-len(cmds)/2, "one PIK contact per command")
	assert.Zero(t, e.ipay.Duplicates(), "no duplicate InstantPay contact")
	assert.Zero(t, e.pik.Duplicates(), "no duplicate PIK contact")

	var warns, errs, reconnects int
	for _, s := range svcs {
		logs := s.logs.String()
		warns += strings.Count(logs, `"level":"WARN"`)
		errs += strings.Count(logs, `"level":"ERROR"`)
		reconnects += strings.Count(logs, `"msg":"reconnected to NATS"`)
	}
	t.Logf("%d commands settled in %s (%.0f/s) by 3 instances, with NATS server %s down from a quarter through and instance 1 killed half way; "+
		"%d more after, in waves until both survivors had taken some; "+
		"%d create calls for %d contacts; \"contact created\" outcomes (redeliveries included) by instance 0, 1, 2: %d, %d, %d; service logs: %d warnings, %d errors, %d reconnects",
		n, took.Round(time.Millisecond), float64(n)/took.Seconds(), name, len(cmds)-n,
		creates(), len(e.ipay.Contacts())+len(e.pik.Contacts()),
		createdBy(svcs[0]), createdBy(svcs[1]), createdBy(svcs[2]), warns, errs, reconnects)

	// The lost server comes back and catches up.
	e.cluster.Restart(victim)
	require.Eventually(t, func() bool { return caughtUp(ctx, e.js) }, 60*time.Second, 100*time.Millisecond,
		"%s catches up with the other two", name)
}

// TestClusterResumesAfterLosingTheConsumerLeader: an instance's pull
// requests wait on the durable consumer's leader. When that server dies,
// the new leader tells the requests it knows of to start again (409
// Leadership Change), but under load a request can be missed, and then only
// missing heartbeats tell the instance: with the client's defaults (30s
// requests, 15s heartbeats, two missed) it fetched nothing for 30s, in
// about one run in three here; the runner's own settings bring it back
// within 4s.
func TestClusterResumesAfterLosingTheConsumerLeader(t *testing.T) {
	e := newClusterTestEnv(t, 3)
	// Acks sent to a lost leader are lost: their commands come again
	// after the ack wait, which the test waits out before it counts.
	e.vars["ACK_WAIT"] = "5s"
	e.quietLogs = true
	e.vars["CONCURRENCY"] = "4"
	e.ipay.Inject(sandbox.Fault{Latency: 50 * time.Millisecond}) // PIK answers at once
	require.NoError(t, run(t.Context(), []string{"setup", "--replicas", "3"}, e.getenv, nil, io.Discard, io.Discard))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leader := e.cluster.Index(groupLeaders(ctx, e.js)[provision.Durable])
	require.GreaterOrEqual(t, leader, 0)
	// The instance talks to the two others only, so no reconnect tells it.
	var urls []string
	for i, s := range e.cluster.Servers() {
		if i != leader {
			urls = append(urls, s.ClientURL())
		}
	}
	e.vars["NATS_URL"] = strings.Join(urls, ",")
	svc := e.start(t)
	cmds := ids("resume", 400)
	publishAll(t, e.js, cmds)
	creates := func() int { return e.ipay.CreateCalls() + e.pik.CreateCalls() }
	require.Eventually(t, func() bool { return creates() >= 40 }, 30*time.Second, time.Millisecond)

	name := e.cluster.Servers()[leader].Name()
	e.cluster.Stop(leader)
	stopped, at := time.Now(), creates()
	// Past what it had fetched before (at most 2 × CONCURRENCY).
	require.Eventually(t, func() bool { return creates() >= at+20 }, 15*time.Second, time.Millisecond,
		"the instance goes on within 15s of losing the consumer's leader %s", name)
	t.Logf("lost %s, the durable consumer's leader, with %d commands left; the instance went on %s later (missed heartbeats noticed %d times)",
		name, len(cmds)-at, time.Since(stopped).Round(time.Millisecond), strings.Count(svc.logs.String(), "no heartbeat received"))
	e.awaitEvents(t, len(cmds), 30*time.Second)
	assertExactlyOnce(t, e.settle(t, svc, 30*time.Second), cmds)
}

// publishAll publishes one command per id, alternating InstantPay and PIK,
// with Nats-Msg-Id equal to the commandId, and waits for every ack.
func publishAll(t *testing.T, js jetstream.JetStream, ids []string) {
	t.Helper()
	const batch = 1000 // within the client's limit of unacknowledged publishes
	acks := make([]jetstream.PubAckFuture, 0, batch)
	wait := func() {
		for _, f := range acks {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				require.NoError(t, err, "publish")
			case <-time.After(30 * time.Second):
				t.Fatal("publish not acknowledged")
			}
		}
		acks = acks[:0]
	}
	for i, id := range ids {
		body := command(id)
		if i%2 == 1 {
			body = command(id, `"provider":"pik"`)
		}
		msg := nats.NewMsg(contact.SubjectCreate)
		msg.Data = []byte(body)
		f, err := js.PublishMsgAsync(msg, jetstream.WithMsgID(id))
		require.NoError(t, err)
		if acks = append(acks, f); len(acks) == batch {
			wait()
		}
	}
	wait()
}

// groupLeaders returns the name of the server leading each replicated
// stream and the durable consumer.
func groupLeaders(ctx context.Context, js jetstream.JetStream) map[string]string {
	out := map[string]string{}
	for _, name := range replicated {
		if s, err := js.Stream(ctx, name); err == nil && s.CachedInfo().Cluster != nil {
			out[name] = s.CachedInfo().Cluster.Leader
		}
	}
	if c, err := js.Consumer(ctx, provision.CommandStream, provision.Durable); err == nil && c.CachedInfo().Cluster != nil {
		out[provision.Durable] = c.CachedInfo().Cluster.Leader
	}
	return out
}

// progress reads the number of events and the durable consumer's backlog.
func consumerProgress(ctx context.Context, js jetstream.JetStream) (msgs, pending, ackPending uint64, err error) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s, err := js.Stream(rctx, provision.EventStream)
	if err != nil {
		return 0, 0, 0, err
	}
	c, err := js.Consumer(rctx, provision.CommandStream, provision.Durable)
	if err != nil {
		return 0, 0, 0, err
	}
	ci := c.CachedInfo()
	return s.CachedInfo().State.Msgs, ci.NumPending, uint64(ci.NumAckPending), nil
}

// caughtUp reports whether every replica of the replicated streams is
// online and current.
func caughtUp(ctx context.Context, js jetstream.JetStream) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for _, name := range replicated {
		s, err := js.Stream(ctx, name)
		if err != nil || s.CachedInfo().Cluster == nil || len(s.CachedInfo().Cluster.Replicas) != 2 {
			return false
		}
		for _, p := range s.CachedInfo().Cluster.Replicas {
			if !p.Current || p.Offline {
				return false
			}
		}
	}
	return true
}
