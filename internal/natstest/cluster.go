package natstest

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ClusterName is the cluster name of the servers StartCluster starts.
const ClusterName = "natstest"

// readyWithin bounds how long StartCluster and Restart wait for JetStream.
const readyWithin = 30 * time.Second

// Cluster is a JetStream cluster of in-process servers on loopback ports,
// each routed to all the others, for tests of replicated streams and of
// losing a server.
type Cluster struct {
	servers []*Server
	tb      testing.TB
}

// StartCluster starts n (2 or more) JetStream servers named n1..n<n> in one
// cluster, each with its own store in a temporary folder, and waits until
// JetStream has a meta leader that sees every server, so that a stream with
// n replicas can be created at once. The servers are shut down when the
// test ends.
//
// Every server must be given the routes up front (JetStream refuses to
// cluster without them), so the cluster ports are picked first, by
// listening on port 0 and closing; should another process take one
// meanwhile, the whole cluster is started again on fresh ports.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	if n < 2 {
		tb.Fatalf("natstest: a cluster needs 2 or more servers, not %d (use Start for one)", n)
	}
	c := &Cluster{tb: tb}
	tb.Cleanup(c.stopAll)
	var err error
	for range 3 {
		if err = c.launch(n); err == nil {
			break
		}
		c.stopAll()
	}
	if err != nil {
		tb.Fatalf("natstest: start cluster: %v", err)
	}
	for _, s := range c.servers {
		// Keep the client ports the first start picked, for restarts.
		s.opts.Port = s.Addr().(*net.TCPAddr).Port
	}
	if err := c.waitReady(len(c.servers)); err != nil {
		tb.Fatalf("natstest: %v", err)
	}
	return c
}

// launch starts n servers on freshly picked cluster ports.
func (c *Cluster) launch(n int) error {
	ports, err := freePorts(n)
	if err != nil {
		return err
	}
	routes := make([]*url.URL, n)
	for i, p := range ports {
		routes[i] = &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", p)}
	}
	c.servers = make([]*Server, n)
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   c.tb.TempDir(),
			NoLog:      true,
			NoSigs:     true,
			Cluster: server.ClusterOpts{
				Name: ClusterName,
				Host: "127.0.0.1",
				Port: ports[i],
			},
			// All of them, itself included (a server ignores a route to
			// itself): the same list serves every start and restart.
			Routes: routes,
		}
		c.servers[i] = &Server{opts: opts, tb: c.tb}
	}
	for _, s := range c.servers {
		if err := s.launch(); err != nil {
			return err
		}
	}
	return nil
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close() // all held until all are picked: n distinct ports
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// waitReady waits until a meta leader sees want servers with JetStream and
// every running server is current with it.
func (c *Cluster) waitReady(want int) error {
	deadline := time.Now().Add(readyWithin)
	for time.Now().Before(deadline) {
		if l := c.Leader(); l >= 0 && len(c.servers[l].JetStreamClusterPeers()) >= want {
			current := true
			for _, s := range c.servers {
				if s.Running() && !s.JetStreamIsCurrent() {
					current = false
				}
			}
			if current {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("JetStream cluster not ready within %s: meta leader %d (-1: none)", readyWithin, c.Leader())
}

func (c *Cluster) stopAll() {
	for _, s := range c.servers {
		if s != nil {
			s.Stop()
		}
	}
}

// Servers returns the servers, in the order of their names n1, n2, ...
func (c *Cluster) Servers() []*Server { return c.servers }

// ClientURLs returns the client URLs of every server, stopped ones
// included, comma-separated, as NATS_URL takes them.
func (c *Cluster) ClientURLs() string {
	urls := make([]string, len(c.servers))
	for i, s := range c.servers {
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", s.opts.Port)
	}
	return strings.Join(urls, ",")
}

// Leader returns the index of the JetStream meta leader, or -1 if no
// running server is.
func (c *Cluster) Leader() int {
	for i, s := range c.servers {
		if s.Running() && s.JetStreamIsLeader() {
			return i
		}
	}
	return -1
}

// Index returns the index of the server with the given name (as stream
// infos name leaders and replicas), or -1.
func (c *Cluster) Index(name string) int {
	for i, s := range c.servers {
		if s.opts.ServerName == name {
			return i
		}
	}
	return -1
}

// Stop shuts server i down and waits until it has; the others go on, and
// elect new leaders for what it led.
func (c *Cluster) Stop(i int) { c.servers[i].Stop() }

// Restart starts server i again (stopping it first if it runs) on the same
// ports and store, and waits until it is current with the meta leader.
func (c *Cluster) Restart(i int) {
	c.tb.Helper()
	c.servers[i].Restart()
	running := 0
	for _, s := range c.servers {
		if s.Running() {
			running++
		}
	}
	if err := c.waitReady(running); err != nil {
		c.tb.Fatalf("natstest: restart %s: %v", c.servers[i].opts.ServerName, err)
	}
}

// Connect returns a connection to any of the servers that reconnects for
// ever (to the others too) and is closed when the test ends, and a
// JetStream context on it.
func (c *Cluster) Connect(tb testing.TB) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	return connect(tb, c.ClientURLs())
}
