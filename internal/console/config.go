package console

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/internal/audit"
	"github.com/contactrelay/contactrelay/internal/pause"
)

// DefaultAddr is where the console listens unless told otherwise: loopback
// only.
const DefaultAddr = "127.0.0.1:8081"

// Config configures a Server. Its zero value, with JS set and either User
// and Password or NoAuth, is usable: the defaults are documented on each
// field.
type Config struct {
	// JS reads the open-failure store, the event stream and the durable
	// consumer, and publishes replays. Required.
	JS jetstream.JetStream
	// Log receives one line per action, and problems. Default: discard.
	Log *slog.Logger
	// User and Password are the one account that may sign in. Both or
	// neither; with neither, NoAuth must be set.
	User, Password string
	// UsersFile is a file of htpasswd lines "user:bcrypt-hash" (as
	// htpasswd -B makes them), re-read when it changes; its users are
	// viewers unless Operators names them. Empty: none.
	UsersFile string
	// Operators are the users (of UsersFile or the proxy) with the
	// operator role; the others are viewers.
	Operators []string
	// ReadOnly makes every user a viewer, whatever else is set.
	ReadOnly bool
	// ProxyUserHeader and ProxyGroupsHeader are the headers in which an
	// authenticating proxy names the user and the user's groups (comma
	// separated); they are believed only from TrustedProxies. Empty: no
	// proxy sign-in.
	ProxyUserHeader, ProxyGroupsHeader string
	// TrustedProxies are the addresses of the proxies whose headers are
	// believed. Required with ProxyUserHeader.
	TrustedProxies []netip.Prefix
	// OperatorGroups are the proxy's groups whose users are operators.
	OperatorGroups []string
	// NoAuth runs the console without authentication: anyone who reaches
	// Addr can use it. Allowed only when Addr is a loopback address.
	NoAuth bool
	// Addr is the address the console is served on, checked against
	// NoAuth. Default DefaultAddr.
	Addr string
	// Refresh is how often the store is asked whether it changed, and the
	// open failures reloaded when it did (at least twice the time a load
	// takes apart). Default 2s.
	Refresh time.Duration
	// StatsRefresh is how often the figures of the event stream and the
	// durable consumer are reloaded. Default 10s.
	StatsRefresh time.Duration
	// JobLease is how long the console's hold on a shared bulk job lasts
	// unless renewed (package jobs); a replica takes over a job let go or
	// whose lease ran out within half of it. Default jobs.DefaultLease.
	JobLease time.Duration
	// Rate is the default pace of a replay, commands per second; a replay
	// may ask for another up to MaxRate. Default 20.
	Rate float64
	// SessionKeyFile holds the key sessions are signed with (at least 32
	// bytes): sessions stay valid across restarts and on every console
	// that shares it. Empty: a random key per process, so that a restart
	// signs everyone out.
	SessionKeyFile string
	// SessionIdle ends a session unused this long. Default 1h.
	SessionIdle time.Duration
	// SessionMax ends a session this long after its sign-in, however
	// used. Default 12h.
	SessionMax time.Duration
	// Audit writes each action's audit entry before the action is done;
	// the activity page reads them back. Nil: actions are only logged,
	// and the activity page lists this console's since it started.
	Audit *audit.Writer
	// Revocations is the bucket of sign-outs the console's replicas share
	// (provision.ConsoleSessionBucket). Nil: a sign-out holds on this
	// console only.
	Revocations jetstream.KeyValue
	// PageSize is how many failures a page lists. Default 50.
	PageSize int
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// PauseAudit, when set, is told of each pause and resume made from
	// the console before it is written (the audit trail's hook); an error
	// stops the change. Default: none.
	PauseAudit pause.Audit
}

// MaxRate is the fastest replay the console starts, commands per second.
const MaxRate = 1000

func (c *Config) setDefaults() {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Refresh <= 0 {
		c.Refresh = 2 * time.Second
	}
	if c.StatsRefresh <= 0 {
		c.StatsRefresh = 10 * time.Second
	}
	if c.Rate <= 0 {
		c.Rate = 20
	}
	if c.SessionMax <= 0 {
		c.SessionMax = 12 * time.Hour
	}
	if c.SessionIdle <= 0 {
		c.SessionIdle = min(time.Hour, c.SessionMax)
	}
	if c.PageSize <= 0 {
		c.PageSize = 50
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// ErrAuthRequired refuses a console without authentication on an address
// other than loopback.
var ErrAuthRequired = errors.New("the console changes state and shows personal data: set CONSOLE_USER and CONSOLE_PASSWORD (or CONSOLE_PASSWORD_FILE), CONSOLE_USERS_FILE or CONSOLE_PROXY_USER_HEADER, or bind CONSOLE_ADDR to loopback (127.0.0.1) to run it without authentication")

// Validate reports a configuration the console refuses: authentication
// half given, or missing on an address other than loopback.
func (c Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.JS == nil {
		errs = append(errs, errors.New("console: no JetStream context"))
	}
	others := c.UsersFile != "" || c.ProxyUserHeader != "" // other accounts than the single one
	switch {
	case (c.User == "") != (c.Password == ""):
		errs = append(errs, errors.New("CONSOLE_USER and CONSOLE_PASSWORD go together: set both, or neither to run without authentication on loopback"))
	case (c.User != "" || others) && c.NoAuth:
		errs = append(errs, errors.New("console: accounts were given, and no authentication asked for"))
	case c.User == "" && !others && !c.NoAuth:
		errs = append(errs, ErrAuthRequired)
	case c.NoAuth && !IsLoopback(c.Addr):
		errs = append(errs, fmt.Errorf("CONSOLE_ADDR %s is not a loopback address: %w", c.Addr, ErrAuthRequired))
	}
	if c.User != "" && c.Password != "" && len(c.Password) < 8 { // a missing one is said above
		errs = append(errs, errors.New("CONSOLE_PASSWORD must be at least 8 characters"))
	}
	if c.ProxyUserHeader != "" && len(c.TrustedProxies) == 0 {
		errs = append(errs, errProxyUntrusted)
	}
	return errors.Join(errs...)
}

// IsLoopback reports whether addr (host:port) listens on loopback only:
// 127.0.0.0/8, ::1 or localhost. An empty host (every interface) is not.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
