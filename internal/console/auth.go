package console

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// cookieName is the session cookie's name.
const cookieName = "contactrelay_console"

// localUser names whoever uses a console run without authentication, in
// the action log.
const localUser = "local (no authentication, loopback)"

// session is a visitor's signed cookie: who signed in (empty before
// signing in), when, when last seen, until when at most, and a nonce its
// CSRF token derives from. Sessions are kept by the browser, not the
// server, so that no visitor costs the server memory and every console
// signing with the same key (Config.SessionKeyFile) takes them; the
// servers keep only the nonces signed out before their expiry, in the
// bucket they share (Config.Revocations).
type session struct {
	User string `json:"u"`
	// Proxy says an authenticating proxy named the user: the session
	// holds only while requests come through it, naming the same user.
	Proxy bool `json:"p,omitempty"`
	// Issued is the sign-in's time, Seen the last request's (to the
	// minute), Expires the absolute end (Unix seconds).
	Issued  int64  `json:"i"`
	Seen    int64  `json:"s"`
	Expires int64  `json:"e"`
	Nonce   string `json:"n"`
}

func (s *session) authed() bool { return s != nil && s.User != "" }

// sessions signs and checks session cookies. It is safe for concurrent
// use.
type sessions struct {
	key       []byte
	idle, max time.Duration
	now       func() time.Time
	kv        jetstream.KeyValue // sign-outs every replica sees; nil: this process's only

	mu      sync.Mutex
	revoked map[string]int64 // nonce → expiry, signed out here
}

// minSessionKey is the shortest session key a key file may hold.
const minSessionKey = 32

func newSessions(cfg Config) (*sessions, error) {
	ss := &sessions{idle: cfg.SessionIdle, max: cfg.SessionMax, now: cfg.Now, kv: cfg.Revocations, revoked: map[string]int64{}}
	if cfg.SessionKeyFile == "" {
		ss.key = make([]byte, 32)
		_, _ = rand.Read(ss.key) // crypto/rand.Read never fails
		return ss, nil
	}
	b, err := os.ReadFile(cfg.SessionKeyFile)
	if err != nil {
		return nil, fmt.Errorf("CONSOLE_SESSION_KEY_FILE: %w", err)
	}
	ss.key = bytes.TrimSpace(b)
	if len(ss.key) < minSessionKey {
		return nil, fmt.Errorf("CONSOLE_SESSION_KEY_FILE %s holds %d bytes, fewer than %d: make one with 'head -c 32 /dev/urandom | base64 > FILE'", cfg.SessionKeyFile, len(ss.key), minSessionKey)
	}
	return ss, nil
}

func (ss *sessions) mac(parts ...string) []byte {
	m := hmac.New(sha256.New, ss.key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

// issue sets a new session cookie for user (empty: signed out) and
// returns the session.
func (ss *sessions) issue(w http.ResponseWriter, r *http.Request, user string) *session {
	return ss.issueAs(w, r, user, false)
}

// issueAs is issue, for a user a proxy names when proxy is set.
func (ss *sessions) issueAs(w http.ResponseWriter, r *http.Request, user string, proxy bool) *session {
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	now := ss.now()
	s := &session{User: user, Proxy: proxy, Issued: now.Unix(), Seen: now.Unix(), Expires: now.Add(ss.max).Unix(), Nonce: base64.RawURLEncoding.EncodeToString(nonce)}
	ss.write(w, r, s)
	return s
}

// write sets s as the request's session cookie.
func (ss *sessions) write(w http.ResponseWriter, r *http.Request, s *session) {
	payload, _ := json.Marshal(s) // plain fields always encode
	p := base64.RawURLEncoding.EncodeToString(payload)
	value := p + "." + base64.RawURLEncoding.EncodeToString(ss.mac("session", p))
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: secureRequest(r), Expires: time.Unix(s.Expires, 0),
	})
}

// touch marks a signed-in session as seen now, when it was last marked
// over a minute ago (or a tenth of the idle time): its cookie is written
// again with the same nonce, so its CSRF token stays.
func (ss *sessions) touch(w http.ResponseWriter, r *http.Request, s *session) {
	now := ss.now()
	if !s.authed() || now.Sub(time.Unix(s.Seen, 0)) < min(time.Minute, ss.idle/10) {
		return
	}
	t := *s
	t.Seen = now.Unix()
	ss.write(w, r, &t)
}

// errSessionCheck is a session that could not be checked against the
// sign-outs.
var errSessionCheck = errors.New("the sign-outs could not be read")

// read returns the request's valid session, or nil: signed, not past its
// absolute expiry nor idle longer than allowed, not signed out here or on
// another replica. An error says the sign-outs could not be read.
func (ss *sessions) read(r *http.Request) (*session, error) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return nil, nil
	}
	p, sig, ok := strings.Cut(c.Value, ".")
	if !ok {
		return nil, nil
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, ss.mac("session", p)) {
		return nil, nil
	}
	payload, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return nil, nil
	}
	var s session
	now := ss.now()
	if json.Unmarshal(payload, &s) != nil || s.Nonce == "" || now.Unix() >= s.Expires ||
		now.Unix() >= time.Unix(s.Issued, 0).Add(ss.max).Unix() || now.Sub(time.Unix(s.Seen, 0)) >= ss.idle {
		return nil, nil
	}
	ss.mu.Lock()
	_, gone := ss.revoked[s.Nonce]
	ss.mu.Unlock()
	if gone {
		return nil, nil
	}
	if ss.kv != nil && s.authed() {
		_, err := ss.kv.Get(r.Context(), s.Nonce)
		switch {
		case err == nil:
			return nil, nil
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			return nil, fmt.Errorf("%w: %w", errSessionCheck, err)
		}
	}
	return &s, nil
}

// revoke signs a session out for good, before its expiry: here at once,
// and on every replica through the shared bucket, where the sign-out is
// kept until the session's absolute expiry.
func (ss *sessions) revoke(ctx context.Context, s *session) error {
	ss.mu.Lock()
	now := ss.now().Unix()
	for n, exp := range ss.revoked {
		if exp <= now {
			delete(ss.revoked, n)
		}
	}
	ss.revoked[s.Nonce] = s.Expires
	ss.mu.Unlock()
	if ss.kv == nil || !s.authed() {
		return nil
	}
	ttl := max(time.Unix(s.Expires, 0).Sub(ss.now())+time.Minute, time.Minute)
	_, err := ss.kv.Create(ctx, s.Nonce, []byte(s.User), jetstream.KeyTTL(ttl))
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("record the sign-out in %s: %w", ss.kv.Bucket(), err)
	}
	return nil
}

// csrf returns the session's CSRF token.
func (ss *sessions) csrf(s *session) string {
	return base64.RawURLEncoding.EncodeToString(ss.mac("csrf", s.Nonce))
}

// checkCSRF reports whether the request carries the session's token, in
// the form field csrf or the header X-CSRF-Token.
func (ss *sessions) checkCSRF(r *http.Request, s *session) bool {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	want := ss.csrf(s)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// secureRequest reports whether the browser reached us over TLS, directly
// or through a proxy that says so.
func secureRequest(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// passwordOK compares a password in constant time, whatever its length.
func passwordOK(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

type sessionKey struct{}

// signedIn is a request's session and the role of its user.
type signedIn struct {
	s    *session
	role Role
}

func withSession(ctx context.Context, s *session, role Role) context.Context {
	return context.WithValue(ctx, sessionKey{}, signedIn{s, role})
}

func sessionOf(r *http.Request) *session {
	v, _ := r.Context().Value(sessionKey{}).(signedIn)
	return v.s
}

// roleOf returns the role of the request's user ("" before signing in).
func roleOf(r *http.Request) Role {
	v, _ := r.Context().Value(sessionKey{}).(signedIn)
	return v.role
}

// operatorOnly reports whether a request starts an action (or opens an
// action's form), which only an operator may: every POST but signing in
// and out, and the replay, discard and repair forms.
func operatorOnly(r *http.Request) bool {
	switch r.URL.Path {
	case "/login", "/logout":
		return false
	case "/replay", "/discard", "/failure/repair", "/repair-file":
		return true
	case "/failures.csv":
		// The download is unmasked: like unmasking, an operator's.
		return true
	}
	return r.Method != http.MethodGet && r.Method != http.MethodHead
}

// localPath returns next when it is a path on this site, else "/": a
// sign-in never redirects elsewhere.
func localPath(next string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || u.IsAbs() || u.Host != "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return "/"
	}
	return next
}

// guard is the console's middleware: security headers on everything;
// without authentication, nothing for a Host that is not loopback;
// a session on every page (made for a visitor who has none on the
// sign-in page, or on a console without authentication); sign-in required
// elsewhere (GET: a redirect to the sign-in page; other methods: 401); and
// on every request but GET and HEAD, a cross-origin check and the
// session's CSRF token (403 without).
func (srv *Server) guard(next http.Handler) http.Handler {
	crossOrigin := http.NewCrossOriginProtection()
	crossOrigin.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "refused: a cross-origin request that changes state", http.StatusForbidden)
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if srv.cfg.NoAuth && !IsLoopback(r.Host) {
			// Another name that resolves to loopback (DNS rebinding)
			// would make another site's page the console's own origin.
			http.Error(w, "refused: without authentication the console answers only to a loopback address or localhost, not "+strconv.Quote(r.Host), http.StatusMisdirectedRequest)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/assets/") {
			next.ServeHTTP(w, r)
			return
		}
		h.Set("Cache-Control", "no-store")
		safe := r.Method == http.MethodGet || r.Method == http.MethodHead
		if !safe {
			if err := crossOrigin.Check(r); err != nil {
				http.Error(w, "refused: a cross-origin request that changes state", http.StatusForbidden)
				return
			}
			if status, msg := readForm(w, r); status != 0 {
				http.Error(w, msg, status)
				return
			}
		}
		s, err := srv.sessions.read(r)
		if err != nil {
			srv.cfg.Log.Error("console: a session could not be checked", "err", err)
			http.Error(w, "the console cannot check sessions now ("+err.Error()+"); try again shortly", http.StatusServiceUnavailable)
			return
		}
		var role Role
		if user, groups, ok := srv.accounts.proxied(r); ok {
			// The proxy signed the user in: a session of that user
			// carries the CSRF token.
			if s == nil || !s.Proxy || s.User != user {
				if !safe {
					http.Error(w, "refused: no session of "+user+" yet, so no CSRF token; reload the page", http.StatusForbidden)
					return
				}
				s = srv.sessions.issueAs(w, r, user, true)
			}
			role = srv.accounts.proxyRole(user, groups)
		} else {
			if s.authed() && !srv.cfg.NoAuth {
				known := false
				if !s.Proxy {
					role, known = srv.accounts.role(s.User)
				}
				if !known { // a proxy's session off the proxy, or a user no longer in the file
					s = &session{Nonce: s.Nonce, Expires: s.Expires}
				}
			}
			switch {
			case srv.cfg.NoAuth && !s.authed():
				if !safe && s == nil {
					// A POST with no session at all cannot carry its token.
					http.Error(w, "refused: no session, so no CSRF token; reload the page", http.StatusForbidden)
					return
				}
				s = srv.sessions.issue(w, r, localUser)
			case r.URL.Path == "/login":
				if s == nil {
					if !safe {
						http.Error(w, "refused: no session, so no CSRF token; reload the sign-in page", http.StatusForbidden)
						return
					}
					s = srv.sessions.issue(w, r, "")
				}
			case !s.authed():
				if !srv.accounts.passwords() {
					http.Error(w, "refused: sign in through the authenticating proxy", http.StatusUnauthorized)
					return
				}
				if safe {
					http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
					return
				}
				http.Error(w, "refused: sign in first", http.StatusUnauthorized)
				return
			}
			if srv.cfg.NoAuth {
				role = srv.accounts.cap(RoleOperator)
			}
		}
		if !safe && !srv.sessions.checkCSRF(r, s) {
			http.Error(w, "refused: the form's CSRF token is missing or wrong; reload the page and try again", http.StatusForbidden)
			return
		}
		if role != RoleOperator && s.authed() && operatorOnly(r) {
			http.Error(w, "refused: "+s.User+" is a "+string(role)+"; only an operator may do this"+srv.readOnlyNote(), http.StatusForbidden)
			return
		}
		srv.sessions.touch(w, r, s)
		next.ServeHTTP(w, r.WithContext(withSession(r.Context(), s, role)))
	})
}

// maxFormBytes bounds the body of a POST: the console's largest form, a
// repair, holds a command of at most 64 KiB.
const maxFormBytes = 1 << 20

// readForm reads a POST's form, urlencoded or multipart, from at most
// maxFormBytes of body (a multipart file too, which is then kept in
// memory, never on disk). It returns the status and text of a refusal, or
// 0.
func readForm(w http.ResponseWriter, r *http.Request) (int, string) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	err := r.ParseForm()
	if err == nil {
		err = r.ParseMultipartForm(maxFormBytes)
	}
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil || errors.Is(err, http.ErrNotMultipart):
		return 0, ""
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("refused: the request's body is over %d bytes", maxFormBytes)
	}
	return http.StatusBadRequest, "refused: the form cannot be read: " + err.Error()
}
