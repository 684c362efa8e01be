// Package pik is contactrelay's adapter for the PIK Global Account API: it
// obtains and caches the app's access token, creates contacts with
// POST /api/v1/contact/create, finds them again by contactCode with
// GET /api/v1/contact/list for reconciling, and classifies every failure as
// a *provider.Error.
package pik

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/clients/provider"
	"github.com/contactrelay/contactrelay/rules"

	"github.com/contactrelay/contactrelay/internal/clients"
	"github.com/contactrelay/contactrelay/internal/redact"
)

// Name is the provider's name in commands and events.
const Name = rules.PIK

// Defaults of Config.
const (
	DefaultTimeout       = 10 * time.Second
	DefaultRefreshBefore = time.Minute
	// DefaultTokenLifetime is the lifetime of a token whose reply gives
	// none, as the PIK docs state it.
	DefaultTokenLifetime = 30 * time.Minute
)

// Config configures a Client. The zero value of each optional field is its
// documented default.
type Config struct {
	// BaseURL is the API's root; required (PIK gives each partner its own).
	BaseURL string
	// AppID and AppSecret are the app's credentials; both are required.
	// The secret is sent only in the token request. It and every access
	// token the client was issued (the newest redact.MaxRotating) are
	// scrubbed from every answer (redact.Secrets, with its lower bound on
	// length), so that no error or contact the client returns, and no
	// TokenState, holds one.
	AppID     string
	AppSecret string
	// HTTPClient sends the requests; nil means http.DefaultClient. Use
	// clients.NewHTTPClient for a pool sized for the service.
	HTTPClient *http.Client
	// Timeout bounds each request, reply body included; zero means
	// DefaultTimeout.
	Timeout time.Duration
	// RefreshBefore is how long before its expiry a token is replaced;
	// zero means DefaultRefreshBefore. It is capped at half the token's
	// lifetime.
	RefreshBefore time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// LookupMaxPages bounds the pages of the contact list one Lookup reads;
	// zero means clients.DefaultMaxPages (50 pages of 10 contacts).
	LookupMaxPages int
	// LookupTimeout bounds one whole Lookup, every page included; zero
	// means three times Timeout. The caller's context bounds it too: a
	// handler's call timeout shorter than this is the real budget.
	LookupTimeout time.Duration
	// OnTokenRequest, when set, is told of every token request the client
	// makes, once, when it ends: how long it took and its error (nil when
	// a token was issued; a *provider.Error with Op "token", scrubbed,
	// otherwise). A request shared by many callers is one call. It is
	// called on the goroutine that made the request, so it must be quick
	// and safe for concurrent use. Create, Lookup and Authenticate report
	// a failed token request as their own error too: count requests here,
	// not there.
	OnTokenRequest func(took time.Duration, err error)
}

// Client calls the PIK contact API. It is safe for concurrent use: all
// callers share one cached access token, and at most one token request is
// in flight at a time.
type Client struct {
	baseURL       string
	appID         string
	appSecret     string
	hc            *http.Client
	timeout       time.Duration
	refreshBefore time.Duration
	now           func() time.Time
	lookupPages   int
	lookupTime    time.Duration
	secrets       *redact.Secrets // the app secret and the tokens issued
	onToken       func(took time.Duration, err error)

	mu        sync.Mutex
	token     string       // the cached token, "" if none
	expires   time.Time    // when the cached token stops working
	refreshAt time.Time    // when the cached token is replaced
	flight    *tokenFlight // the token request in flight, if any
	fetched   bool         // a token request has finished
	lastErr   error        // the error of the last token request
}

// New returns a Client for cfg, or an error when the base URL or a
// credential is missing.
func New(cfg Config) (*Client, error) {
	if cfg.AppID == "" || cfg.AppSecret == "" {
		return nil, errors.New("pik: the app id and the app secret are required")
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("pik: base URL %q is not an http(s) URL", cfg.BaseURL)
	}
	c := &Client{
		baseURL:       strings.TrimSuffix(cfg.BaseURL, "/"),
		appID:         cfg.AppID,
		appSecret:     cfg.AppSecret,
		hc:            cfg.HTTPClient,
		timeout:       cfg.Timeout,
		refreshBefore: cfg.RefreshBefore,
		now:           cfg.Now,
		lookupPages:   cfg.LookupMaxPages,
		lookupTime:    cfg.LookupTimeout,
		secrets:       redact.NewSecrets(cfg.AppSecret),
		onToken:       cfg.OnTokenRequest,
	}
	if c.hc == nil {
		c.hc = http.DefaultClient
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.refreshBefore <= 0 {
		c.refreshBefore = DefaultRefreshBefore
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.lookupPages <= 0 {
		c.lookupPages = clients.DefaultMaxPages
	}
	if c.lookupTime <= 0 {
		c.lookupTime = 3 * c.timeout
	}
	return c, nil
}

// Validate returns the rules the command's pik fields break, or nil:
// rules.CheckPIK, the one definition the client applies too.
func (c *Client) Validate(cmd contact.Command) []contact.FieldError {
	return rules.CheckPIK(cmd)
}

// ContactCode returns the contactCode the command's contact has at PIK:
// pik.contactCode when it is a non-empty string, else one derived from the
// commandId alone ("CR" and the first 24 hexadecimal digits of its SHA-256,
// uppercase), so that every delivery and replay of a command sends the same
// code and an ambiguous create can be looked up.
func ContactCode(cmd contact.Command) string {
	var code string
	if raw, ok := cmd.PIK["contactCode"]; ok && json.Unmarshal(raw, &code) == nil && strings.TrimSpace(code) != "" {
		return code
	}
	sum := sha256.Sum256([]byte(cmd.CommandID))
	return "CR" + strings.ToUpper(hex.EncodeToString(sum[:])[:24])
}

// send makes one request to path, bounded by the client's timeout, with the
// given bearer token (none if empty), and returns the reply read whole.
func (c *Client) send(ctx context.Context, call clients.Call, method, path string, body []byte, token string) (clients.Reply, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, rd)
	if err != nil {
		return clients.Reply{}, &provider.Error{
			Provider: Name, Op: call.Op, Class: provider.Permanent,
			Message: "cannot build the request", Err: fmt.Errorf("build request: %w", err),
		}
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return call.Do(c.hc, req)
}

// authorized makes an authenticated request and returns the reply,
// scrubbed of the app secret and the tokens, as is any error. When PIK
// answers 401 (as the HTTP status or as the body's code) the token is
// dropped, a new one fetched and the request made once more; that answer is
// final.
func (c *Client) authorized(ctx context.Context, call clients.Call, method, path string, body []byte) (clients.Reply, error) {
	call.Secrets = c.secrets
	for attempt := 1; ; attempt++ {
		token, err := c.accessToken(ctx)
		if err != nil {
			return clients.Reply{}, err
		}
		reply, err := c.send(ctx, call, method, path, body, token)
		if err != nil {
			return clients.Reply{}, err
		}
		if attempt == 1 && unauthorized(reply) {
			c.invalidate(token)
			continue
		}
		return reply, nil
	}
}
