package natstest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func TestClusterSurvivesALostServer(t *testing.T) {
	c := StartCluster(t, 3)
	if got := strings.Count(c.ClientURLs(), ","); got != 2 {
		t.Fatalf("ClientURLs %q: want 3 URLs", c.ClientURLs())
	}
	if c.Leader() < 0 {
		t.Fatal("no meta leader after StartCluster")
	}
	_, js := c.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3"}, Replicas: 3})
	if err != nil {
		t.Fatalf("create an R3 stream at once: %v", err)
	}
	if _, err := js.Publish(ctx, "r3", []byte("1")); err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leader := c.Index(info.Cluster.Leader)
	if leader < 0 || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream cluster info %+v: want a leader of ours and 2 replicas", info.Cluster)
	}

	// Lose the stream's leader: the other two elect another and go on.
	c.Stop(leader)
	publish := func(data string) {
		t.Helper()
		for {
			// A request sent to the server as it died is lost with it:
			// give each try its own deadline (and an id, in case it was
			// stored after all).
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := js.Publish(pctx, "r3", []byte(data), jetstream.WithMsgID(data))
			pcancel()
			if err == nil {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("publish %s after losing %s: %v", data, info.Cluster.Leader, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	publish("2")

	// Back on the same ports and store, it catches up.
	c.Restart(leader)
	publish("3")
	if !c.Servers()[leader].Running() {
		t.Fatal("restarted server not running")
	}
	for {
		ictx, icancel := context.WithTimeout(ctx, 2*time.Second)
		info, err := s.Info(ictx)
		icancel()
		if err == nil && info.State.Msgs == 3 && len(info.Cluster.Replicas) == 2 && allCurrent(info.Cluster.Replicas) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("stream did not recover its 3 replicas: %+v, %v", info, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func allCurrent(peers []*jetstream.PeerInfo) bool {
	for _, p := range peers {
		if !p.Current || p.Offline {
			return false
		}
	}
	return true
}
