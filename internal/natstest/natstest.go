// Package natstest starts in-process NATS servers with JetStream for tests:
// on a random loopback port, with their store in a test's temporary folder,
// shut down when the test ends. Start gives one server; StartCluster gives
// a routed JetStream cluster of several (see cluster.go).
package natstest

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server is an in-process JetStream server that can be restarted on the
// same port and store.
type Server struct {
	*server.Server
	opts *server.Options
	tb   testing.TB
}

// Start starts a JetStream server for tb. change, if not nil, adjusts the
// options first (auth, TLS, cluster).
func Start(tb testing.TB, change func(*server.Options)) *Server {
	tb.Helper()
	opts := &server.Options{
		ServerName: "test",
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   tb.TempDir(),
		NoLog:      true,
		NoSigs:     true,
	}
	if change != nil {
		change(opts)
	}
	s := &Server{opts: opts, tb: tb}
	s.start()
	// The first start picked the port: keep it for restarts.
	s.opts.Port = s.Addr().(*net.TCPAddr).Port
	tb.Cleanup(s.Stop)
	return s
}

func (s *Server) start() {
	s.tb.Helper()
	if err := s.launch(); err != nil {
		s.tb.Fatal(err)
	}
}

// launch starts the server with s.opts and waits until it listens.
func (s *Server) launch() error {
	ns, err := server.NewServer(s.opts)
	if err != nil {
		return fmt.Errorf("nats server %s: %w", s.opts.ServerName, err)
	}
	go ns.Start()
	s.Server = ns
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return fmt.Errorf("nats server %s did not start (a port taken?)", s.opts.ServerName)
	}
	return nil
}

// Stop shuts the server down and waits until it has.
func (s *Server) Stop() {
	if s.Server != nil && s.Running() {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// Restart stops the server and starts it again on the same port and store.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	s.start()
}

// Connect returns a connection to the server that reconnects for ever and
// is closed when the test ends, and a JetStream context on it.
func (s *Server) Connect(tb testing.TB) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	return connect(tb, s.ClientURL())
}

// connect connects to urls, reconnecting for ever, until the test ends.
func connect(tb testing.TB, urls string) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// User returns a user of the server's global account, with password,
// allowed everything but publishing to the subjects in denyPublish; give
// it to the options' Users (Start's change), so that JetStream, the
// connection's inboxes and the key-value API keep working for it.
func User(name, password string, denyPublish ...string) *server.User {
	u := &server.User{Username: name, Password: password}
	if len(denyPublish) > 0 {
		u.Permissions = &server.Permissions{Publish: &server.SubjectPermission{Deny: denyPublish}}
	}
	return u
}

// URL returns the server's client URL with user and password in it.
func (s *Server) URL(user, password string) string {
	return fmt.Sprintf("nats://%s:%s@%s", user, password, s.Addr())
}

// Reload changes the running server's options with change and has it
// apply them as a configuration reload would (users and their
// permissions among them), keeping its clients connected.
func (s *Server) Reload(change func(*server.Options)) error {
	opts := s.opts.Clone()
	change(opts)
	if err := s.ReloadOptions(opts); err != nil {
		return fmt.Errorf("reload %s: %w", s.opts.ServerName, err)
	}
	s.opts = opts
	return nil
}
