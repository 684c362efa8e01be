package console

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Sign-in throttling: wrong passwords are counted per client address and
// per account-and-address pair. From a pair's last free guess on, each
// wrong one shuts that pair out for twice as long as the one before (1 s,
// 2 s, 4 s … up to maxShut); past an address's free guesses (across
// accounts), the whole address likewise. A sign-in while shut out is
// answered 429 without its password being checked. So a guesser slows
// himself down: the account's owner signing in from another address, and
// other accounts from the guesser's address (until it has guessed
// addressFree times), are not held back. A right password clears its
// pair's count. Counts are forgotten forgetAfter after their last wrong
// guess. Each console process counts its own.
const (
	pairFree    = 5
	addressFree = 50
	maxShut     = 15 * time.Minute
	forgetAfter = 15 * time.Minute
	// keptStrikes bounds the counts kept; past it, the forgotten ones
	// are swept.
	keptStrikes = 10000
)

// throttle counts wrong sign-ins. It is safe for concurrent use.
type throttle struct {
	now func() time.Time

	mu      sync.Mutex
	strikes map[string]*strikes
}

type strikes struct {
	n     int
	last  time.Time
	until time.Time
}

func newThrottle(now func() time.Time) *throttle {
	return &throttle{now: now, strikes: map[string]*strikes{}}
}

func pairKey(user, addr string) string { return "u\x00" + user + "\x00" + addr }
func addrKey(addr string) string       { return "a\x00" + addr }

// wait returns how long a sign-in of user from addr is still shut out
// (zero: it may be checked).
func (th *throttle) wait(user, addr string) time.Duration {
	th.mu.Lock()
	defer th.mu.Unlock()
	now := th.now()
	var d time.Duration
	for _, k := range []string{pairKey(user, addr), addrKey(addr)} {
		if s := th.strikes[k]; s != nil && s.until.After(now) {
			d = max(d, s.until.Sub(now))
		}
	}
	return d
}

// wrong counts a wrong sign-in of user from addr.
func (th *throttle) wrong(user, addr string) {
	th.mu.Lock()
	defer th.mu.Unlock()
	now := th.now()
	if len(th.strikes) >= keptStrikes {
		for k, s := range th.strikes {
			if now.Sub(s.last) >= forgetAfter {
				delete(th.strikes, k)
			}
		}
	}
	for _, k := range []struct {
		key  string
		free int
	}{{pairKey(user, addr), pairFree}, {addrKey(addr), addressFree}} {
		s := th.strikes[k.key]
		if s == nil || now.Sub(s.last) >= forgetAfter {
			s = &strikes{}
			th.strikes[k.key] = s
		}
		s.n++
		s.last = now
		if over := s.n - k.free; over >= 0 {
			shut := maxShut
			if over < 20 {
				shut = min(time.Second<<over, maxShut)
			}
			s.until = now.Add(shut)
		}
	}
}

// right clears the count of user's sign-ins from addr.
func (th *throttle) right(user, addr string) {
	th.mu.Lock()
	defer th.mu.Unlock()
	delete(th.strikes, pairKey(user, addr))
}

// clientAddr is the address a request comes from: the connection's, or,
// from a trusted proxy, the last address of X-Forwarded-For that is not
// a trusted proxy's.
func (a *accounts) clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !a.trusted(r.RemoteAddr) {
		return host
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for h := range strings.SplitSeq(v, ",") {
			hops = append(hops, strings.TrimSpace(h))
		}
	}
	for i := len(hops) - 1; i >= 0; i-- {
		ip, err := netip.ParseAddr(hops[i])
		if err != nil {
			return host // a hop that is no address: take none of them
		}
		if !a.trusted(hops[i]) || i == 0 {
			return ip.Unmap().String()
		}
	}
	return host
}
