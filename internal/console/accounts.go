package console

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Role is what a signed-in user may do.
type Role string

const (
	// RoleViewer reads every page, masked; it starts no action and does
	// not unmask (unmasking reveals personal data: an operator's action,
	// audited like the others).
	RoleViewer Role = "viewer"
	// RoleOperator also replays, repairs, discards, unmasks and stops
	// replays.
	RoleOperator Role = "operator"
)

// accounts knows who may sign in and with which role: the single account
// (User and Password, an operator), the users of UsersFile (bcrypt
// hashes, re-read when the file changes), and users an authenticating
// proxy names. It is safe for concurrent use.
type accounts struct {
	cfg *Config
	log *slog.Logger

	mu    sync.Mutex
	stamp fileStamp
	users map[string][]byte // user → bcrypt hash
	// dummy is compared when an unknown user signs in, so that an answer
	// takes as long whether or not the user exists: a hash at the
	// file's highest cost.
	dummy []byte
}

// fileStamp tells whether a file changed since it was read.
type fileStamp struct {
	mod  time.Time
	size int64
}

func newAccounts(cfg *Config) (*accounts, error) {
	a := &accounts{cfg: cfg, log: cfg.Log}
	if cfg.UsersFile != "" {
		if err := a.reload(); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// reload reads the users file when it changed since it was read last. A
// file that cannot be read or has a bad line keeps the users read before.
func (a *accounts) reload() error {
	st, err := os.Stat(a.cfg.UsersFile)
	if err != nil {
		return fmt.Errorf("CONSOLE_USERS_FILE: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	stamp := fileStamp{st.ModTime(), st.Size()}
	if a.users != nil && stamp == a.stamp {
		return nil
	}
	b, err := os.ReadFile(a.cfg.UsersFile)
	if err != nil {
		return fmt.Errorf("CONSOLE_USERS_FILE: %w", err)
	}
	users, err := parseUsers(b)
	if err != nil {
		return fmt.Errorf("CONSOLE_USERS_FILE %s: %w", a.cfg.UsersFile, err)
	}
	if a.users != nil {
		a.log.Info("console: users file re-read", "file", a.cfg.UsersFile, "users", len(users))
	}
	cost := bcrypt.MinCost
	if len(users) == 0 {
		cost = bcrypt.DefaultCost
	}
	for _, h := range users {
		c, _ := bcrypt.Cost(h) // checked by parseUsers
		cost = max(cost, c)
	}
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	dummy, err := bcrypt.GenerateFromPassword(secret, cost)
	if err != nil {
		return fmt.Errorf("CONSOLE_USERS_FILE: %w", err)
	}
	a.users, a.stamp, a.dummy = users, stamp, dummy
	return nil
}

// parseUsers reads htpasswd lines "user:bcrypt-hash" (as htpasswd -B makes
// them); blank lines and lines starting with # are skipped. An error names
// the line, never its hash.
func parseUsers(b []byte) (map[string][]byte, error) {
	users := map[string][]byte{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("line %d is not user:hash", n)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("line %d (user %q): not a bcrypt hash (make the file with htpasswd -B)", n, user)
		}
		users[user] = []byte(hash)
	}
	return users, sc.Err()
}

// fileUser returns a user's hash from the users file, re-read first if it
// changed.
func (a *accounts) fileUser(user string) ([]byte, bool) {
	if a.cfg.UsersFile == "" {
		return nil, false
	}
	if err := a.reload(); err != nil {
		a.log.Error("console: the users file could not be re-read; the users read before stay", "err", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	h, ok := a.users[user]
	return h, ok
}

// passwords says whether any account signs in with a password.
func (a *accounts) passwords() bool { return a.cfg.User != "" || a.cfg.UsersFile != "" }

// check reports whether user signs in with password. Every path compares
// a password, so that an unknown user answers as late as a known one.
func (a *accounts) check(user, password string) bool {
	if a.cfg.User != "" {
		userOK := passwordOK(user, a.cfg.User) // both compared, in constant time
		if passwordOK(password, a.cfg.Password) && userOK {
			return true
		}
	}
	hash, ok := a.fileUser(user)
	if a.cfg.UsersFile == "" {
		return false
	}
	if !ok {
		a.mu.Lock()
		hash = a.dummy
		a.mu.Unlock()
	}
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil && ok
}

// role returns a password account's role, and false when it is no account
// (any longer: a user taken out of the file is signed out).
func (a *accounts) role(user string) (Role, bool) {
	switch {
	case a.cfg.User != "" && subtle.ConstantTimeCompare([]byte(user), []byte(a.cfg.User)) == 1:
		return a.cap(RoleOperator), true
	case a.cfg.UsersFile != "":
		if _, ok := a.fileUser(user); !ok {
			return "", false
		}
		if slices.Contains(a.cfg.Operators, user) {
			return a.cap(RoleOperator), true
		}
		return RoleViewer, true
	}
	return "", false
}

// proxyRole returns the role of a user an authenticating proxy names, from
// the user's groups or the operators list.
func (a *accounts) proxyRole(user string, groups []string) Role {
	if slices.Contains(a.cfg.Operators, user) {
		return a.cap(RoleOperator)
	}
	for _, g := range groups {
		if slices.Contains(a.cfg.OperatorGroups, g) {
			return a.cap(RoleOperator)
		}
	}
	return RoleViewer
}

// cap makes every role a viewer when the console is read-only.
func (a *accounts) cap(r Role) Role {
	if a.cfg.ReadOnly {
		return RoleViewer
	}
	return r
}

// proxied returns the user and groups an authenticating proxy sends, when
// the request comes from a trusted proxy and names a user; headers from
// any other address are ignored.
func (a *accounts) proxied(r *http.Request) (user string, groups []string, ok bool) {
	if a.cfg.ProxyUserHeader == "" || !a.trusted(r.RemoteAddr) {
		return "", nil, false
	}
	user = strings.TrimSpace(r.Header.Get(a.cfg.ProxyUserHeader))
	if user == "" {
		return "", nil, false
	}
	if a.cfg.ProxyGroupsHeader != "" {
		for _, v := range r.Header.Values(a.cfg.ProxyGroupsHeader) {
			for g := range strings.SplitSeq(v, ",") {
				if g = strings.TrimSpace(g); g != "" {
					groups = append(groups, g)
				}
			}
		}
	}
	return user, groups, true
}

// trusted reports whether remote (host:port) is one of the trusted
// proxies.
func (a *accounts) trusted(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range a.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// errProxyUntrusted refuses a proxy header without addresses to trust it
// from.
var errProxyUntrusted = errors.New("CONSOLE_PROXY_USER_HEADER needs CONSOLE_TRUSTED_PROXIES: the addresses of the proxies whose header is believed")
