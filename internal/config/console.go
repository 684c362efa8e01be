package config

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// ConsoleSettings returns the console's variables, read by the commands
// that serve it ('consumer console' and 'consumer dev') as a command's
// own settings (Flags' extra); they are the console's, not the service's,
// so that no deployment of the service is asked to set them.
func ConsoleSettings() []Setting {
	return []Setting{
		{Env: "CONSOLE_ADDR", Flag: "console-addr", Default: "127.0.0.1:8081", Usage: "address of the web console (without CONSOLE_USER and CONSOLE_PASSWORD: loopback only; dev: off for none)"},
		{Env: "CONSOLE_USER", Flag: "console-user", Usage: "the user who may sign in to the console"},
		{Env: "CONSOLE_PASSWORD", Flag: "console-password", Usage: "that user's password, at least 8 characters", Secret: true},
		{Env: "CONSOLE_USERS_FILE", Flag: "console-users-file", Usage: "file of htpasswd lines user:bcrypt-hash (htpasswd -B), re-read when it changes"},
		{Env: "CONSOLE_OPERATORS", Flag: "console-operators", Usage: "comma list of the users with the operator role; the others are viewers"},
		{Env: "CONSOLE_READ_ONLY", Flag: "console-read-only", Default: "false", Usage: "true: every user is a viewer, whatever else is set"},
		{Env: "CONSOLE_PROXY_USER_HEADER", Flag: "console-proxy-user-header", Usage: "header in which an authenticating proxy names the user (such as X-Forwarded-User)"},
		{Env: "CONSOLE_PROXY_GROUPS_HEADER", Flag: "console-proxy-groups-header", Usage: "header in which that proxy lists the user's groups, comma separated"},
		{Env: "CONSOLE_TRUSTED_PROXIES", Flag: "console-trusted-proxies", Usage: "comma list of the CIDRs the proxy headers are believed from"},
		{Env: "CONSOLE_SESSION_KEY_FILE", Flag: "console-session-key-file", Usage: "file holding the key sessions are signed with (at least 32 bytes): sessions stay valid across restarts and on every console sharing it; unset: a key per process"},
		{Env: "CONSOLE_SESSION_IDLE", Flag: "console-session-idle", Default: "1h", Usage: "a session unused this long is over"},
		{Env: "CONSOLE_SESSION_MAX", Flag: "console-session-max", Default: "12h", Usage: "a session is over this long after its sign-in, however used"},
		{Env: "CONSOLE_OPERATOR_GROUPS", Flag: "console-operator-groups", Usage: "comma list of the proxy's groups whose users are operators"},
	}
}

// ConsoleAuth are the console's accounts besides the single
// CONSOLE_USER, their roles, and its sessions (docs/CONSOLE.md).
type ConsoleAuth struct {
	// SessionKeyFile is CONSOLE_SESSION_KEY_FILE; SessionIdle and
	// SessionMax CONSOLE_SESSION_IDLE and CONSOLE_SESSION_MAX.
	SessionKeyFile          string
	SessionIdle, SessionMax time.Duration
	// UsersFile is CONSOLE_USERS_FILE; Operators CONSOLE_OPERATORS;
	// ReadOnly CONSOLE_READ_ONLY.
	UsersFile string
	Operators []string
	ReadOnly  bool
	// ProxyUserHeader, ProxyGroupsHeader, TrustedProxies and
	// OperatorGroups are CONSOLE_PROXY_USER_HEADER,
	// CONSOLE_PROXY_GROUPS_HEADER, CONSOLE_TRUSTED_PROXIES and
	// CONSOLE_OPERATOR_GROUPS.
	ProxyUserHeader, ProxyGroupsHeader string
	TrustedProxies                     []netip.Prefix
	OperatorGroups                     []string
}

// parseConsoleAuth reads the console's account settings, reporting a
// bad value through fail.
func parseConsoleAuth(v map[string]string, fail func(env, format string, args ...any)) ConsoleAuth {
	a := ConsoleAuth{
		UsersFile:         strings.TrimSpace(v["CONSOLE_USERS_FILE"]),
		Operators:         commaList(v["CONSOLE_OPERATORS"]),
		ProxyUserHeader:   strings.TrimSpace(v["CONSOLE_PROXY_USER_HEADER"]),
		ProxyGroupsHeader: strings.TrimSpace(v["CONSOLE_PROXY_GROUPS_HEADER"]),
		OperatorGroups:    commaList(v["CONSOLE_OPERATOR_GROUPS"]),
	}
	if s := strings.TrimSpace(v["CONSOLE_READ_ONLY"]); s != "" {
		ro, err := strconv.ParseBool(s)
		if err != nil {
			fail("CONSOLE_READ_ONLY", "must be true or false, not %q", s)
		}
		a.ReadOnly = ro
	}
	for _, c := range commaList(v["CONSOLE_TRUSTED_PROXIES"]) {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			ip, ierr := netip.ParseAddr(c)
			if ierr != nil {
				fail("CONSOLE_TRUSTED_PROXIES", "must be a comma list of CIDRs (10.0.0.0/8) or addresses, not %q", c)
				continue
			}
			p = netip.PrefixFrom(ip, ip.BitLen())
		}
		a.TrustedProxies = append(a.TrustedProxies, p.Masked())
	}
	a.SessionKeyFile = strings.TrimSpace(v["CONSOLE_SESSION_KEY_FILE"])
	dur := func(env string) time.Duration {
		d, err := time.ParseDuration(strings.TrimSpace(v[env]))
		if err != nil || d < time.Minute || d > 30*24*time.Hour {
			fail(env, "must be a duration from 1m to 720h, such as 30m or 12h, not %q", v[env])
			return 0
		}
		return d
	}
	a.SessionIdle, a.SessionMax = dur("CONSOLE_SESSION_IDLE"), dur("CONSOLE_SESSION_MAX")
	if a.SessionIdle > 0 && a.SessionMax > 0 && a.SessionIdle > a.SessionMax {
		fail("CONSOLE_SESSION_IDLE", "(%s) must not exceed CONSOLE_SESSION_MAX (%s)", a.SessionIdle, a.SessionMax)
	}
	if a.ProxyUserHeader != "" && len(a.TrustedProxies) == 0 {
		fail("CONSOLE_PROXY_USER_HEADER", "needs CONSOLE_TRUSTED_PROXIES: the addresses of the proxies whose header is believed")
	}
	return a
}

// commaList splits a comma list, dropping blanks.
func commaList(s string) []string {
	var out []string
	for x := range strings.SplitSeq(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}
