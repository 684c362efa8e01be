package pik

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/contactrelay/contactrelay/internal/clients/provider"

	"github.com/contactrelay/contactrelay/internal/clients"
)

// tokenPath is where PIK issues access tokens.
const tokenPath = "/auth/token"

// tokenFlight is one token request, shared by every caller that waits for
// it. token and err are set before done is closed.
type tokenFlight struct {
	done  chan struct{}
	token string
	err   error
}

// tokenGrant is a token PIK issued and when to replace it.
type tokenGrant struct {
	token     string
	expires   time.Time
	refreshAt time.Time
}

// Authenticate makes sure the client holds a usable access token, fetching
// one if needed, and returns the error of the token request if it failed.
// Calling it at start tells early whether the credentials work; Create and
// Lookup call it themselves.
func (c *Client) Authenticate(ctx context.Context) error {
	_, err := c.accessToken(ctx)
	return err
}

// TokenState reports how the last token request went: ok is true when it
// succeeded, and err is its error when it failed. Both are zero before the
// first request ends. It is meant for readiness checks.
func (c *Client) TokenState() (ok bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fetched && c.lastErr == nil, c.lastErr
}

// accessToken returns the cached token while it is fresh. Otherwise it
// starts a token request unless one is in flight, and waits for that one
// request, or until ctx is done. The request runs apart from ctx (bounded
// by the client's timeout), so that one caller giving up does not fail the
// others waiting for it.
func (c *Client) accessToken(ctx context.Context) (string, error) {
	c.mu.Lock()
	if c.token != "" && c.now().Before(c.refreshAt) {
		token := c.token
		c.mu.Unlock()
		return token, nil
	}
	f := c.flight
	if f == nil {
		f = &tokenFlight{done: make(chan struct{})}
		c.flight = f
		go c.refresh(context.WithoutCancel(ctx), f)
	}
	c.mu.Unlock()

	select {
	case <-f.done:
		return f.token, f.err
	case <-ctx.Done():
		call := clients.Call{Provider: Name, Op: "token", Safe: true}
		pe := call.TransportError(ctx.Err(), false)
		pe.Message = "gave up waiting for an access token: " + ctx.Err().Error()
		return "", pe
	}
}

// refresh runs the token request of flight f and records its outcome. When
// it fails while the cached token has not expired yet, the callers keep
// using that token. A new token joins the secrets the client scrubs before
// anyone can use it; the error is scrubbed of them before anyone sees it
// (the token reply itself is read as it came: it holds the token).
func (c *Client) refresh(ctx context.Context, f *tokenFlight) {
	start := time.Now()
	grant, err := c.fetchToken(ctx)
	if err == nil {
		c.secrets.Add(grant.token)
	}
	err = clients.ScrubError(err, c.secrets)
	if c.onToken != nil {
		c.onToken(time.Since(start), err)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	c.flight = nil
	c.fetched = true
	c.lastErr = err
	switch {
	case err == nil:
		c.token, c.expires, c.refreshAt = grant.token, grant.expires, grant.refreshAt
		f.token = grant.token
	case c.token != "" && c.now().Before(c.expires):
		f.token = c.token
	default:
		f.err = err
	}
	close(f.done)
}

// invalidate drops token from the cache, unless another has replaced it.
func (c *Client) invalidate(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == token {
		c.token = ""
		c.expires, c.refreshAt = time.Time{}, time.Time{}
	}
}

// fetchToken asks PIK for a token. A refusal of the credentials (HTTP 401
// or 403, or a body code other than 200 that is not 429 or 5xx) is
// Permanent; 429, 5xx, no answer, and a reply without a token are
// Transient.
func (c *Client) fetchToken(ctx context.Context) (tokenGrant, error) {
	call := clients.Call{Provider: Name, Op: "token", Safe: true}
	body, err := clients.EncodeJSON(map[string]string{"appId": c.appID, "appSecret": c.appSecret})
	if err != nil {
		return tokenGrant{}, &provider.Error{Provider: Name, Op: call.Op, Class: provider.Permanent, Message: "cannot encode the token request", Err: err}
	}
	issued := c.now()
	reply, err := c.send(ctx, call, http.MethodPost, tokenPath, body, "")
	if err != nil {
		return tokenGrant{}, err
	}
	env, perr := parseEnvelope(reply.Body)
	pe := replyError(call, reply, env)
	why := env.message()
	if why == "" {
		why = http.StatusText(reply.Status)
	}
	switch {
	case reply.Status == http.StatusUnauthorized || reply.Status == http.StatusForbidden:
		pe.Class = provider.Permanent
		pe.Message = "PIK rejected the app credentials: " + why
	case !reply.OK():
		pe.Class = clients.ClassOfStatus(reply.Status)
		pe.Message = "PIK refused the token request: " + why
	case perr != nil:
		pe.Class = provider.Transient
		pe.Message = "the token reply is not a PIK reply: " + perr.Error()
		pe.Err = perr
	case env.Code != "" && env.Code != codeOK && transientCode(env.Code.String()):
		pe.Class = provider.Transient
		pe.Message = "PIK could not issue a token: " + why
	case env.Code != "" && env.Code != codeOK:
		pe.Class = provider.Permanent
		pe.Message = "PIK rejected the app credentials: " + why
	default:
		token, expiresIn := tokenFrom(env.Data)
		if token == "" {
			pe.Class = provider.Transient
			pe.Message = "the token reply holds no token in data.token, data.accessToken or data.access_token"
			break
		}
		return c.grant(token, expiresIn, issued), nil
	}
	c.retryAfter(pe, reply)
	return tokenGrant{}, pe
}

// grant works out when a token issued at issued expires: after expiresIn
// when the reply gives it, else at the JWT's exp claim, else after
// DefaultTokenLifetime. It is replaced RefreshBefore ahead of that, or
// halfway through its life if that is later.
func (c *Client) grant(token string, expiresIn time.Duration, issued time.Time) tokenGrant {
	expires := issued.Add(DefaultTokenLifetime)
	if expiresIn > 0 {
		expires = issued.Add(expiresIn)
	} else if exp, ok := jwtExpiry(token); ok && exp.After(issued) {
		expires = exp
	}
	lifetime := expires.Sub(issued)
	return tokenGrant{
		token:     token,
		expires:   expires,
		refreshAt: expires.Add(-min(c.refreshBefore, lifetime/2)),
	}
}

// tokenFrom reads the token and its lifetime from a token reply's data:
// data.token, data.accessToken or data.access_token (or data itself when it
// is a string), and data.expiresIn (or data.expires_in) in seconds.
func tokenFrom(data json.RawMessage) (token string, expiresIn time.Duration) {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		_ = json.Unmarshal(data, &token)
		return strings.TrimSpace(token), 0
	}
	var fields struct {
		Token        clients.Text `json:"token"`
		AccessToken  clients.Text `json:"accessToken"`
		AccessToken2 clients.Text `json:"access_token"`
		ExpiresIn    clients.Text `json:"expiresIn"`
		ExpiresIn2   clients.Text `json:"expires_in"`
	}
	if json.Unmarshal(data, &fields) != nil {
		return "", 0
	}
	for _, t := range []clients.Text{fields.Token, fields.AccessToken, fields.AccessToken2} {
		if s := strings.TrimSpace(t.String()); s != "" {
			token = s
			break
		}
	}
	for _, e := range []clients.Text{fields.ExpiresIn, fields.ExpiresIn2} {
		if secs, err := strconv.ParseFloat(e.String(), 64); err == nil && secs > 0 {
			// Capped at a day, so that no value overflows a Duration.
			return token, time.Duration(min(secs, 24*60*60) * float64(time.Second))
		}
	}
	return token, 0
}

// jwtExpiry reads the exp claim of a JWT, without checking its signature.
func jwtExpiry(token string) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return time.Time{}, false
	}
	exp, err := claims.Exp.Float64()
	if err != nil || exp <= 0 {
		return time.Time{}, false
	}
	return time.Unix(int64(exp), 0), true
}
