// Package instantpay is contactrelay's adapter for the InstantPay Contact
// Book API (developers.instantpay.in): it creates contacts with
// POST /contacts/profile, finds them again with GET /contacts/profile for
// reconciling, and classifies every failure as a *provider.Error.
package instantpay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/clients/provider"
	"github.com/contactrelay/contactrelay/rules"

	"github.com/contactrelay/contactrelay/internal/clients"
	"github.com/contactrelay/contactrelay/internal/redact"
)

// Name is the provider's name in commands and events.
const Name = rules.InstantPay

// Defaults of Config.
const (
	DefaultBaseURL  = "https://api.instantpay.in"
	DefaultAuthCode = "1"
	DefaultTimeout  = 10 * time.Second
)

// profilePath is the Contact Book resource: POST creates, GET lists.
const profilePath = "/contacts/profile"

// maxListBytes bounds a reply of the contact list, which may hold every
// contact of the account (when the API does not page it) and so may be far
// larger than other replies.
const maxListBytes = 16 << 20

// Config configures a Client. The zero value of each optional field is its
// documented default.
type Config struct {
	// BaseURL is the API's root; empty means DefaultBaseURL.
	BaseURL string
	// ClientID and ClientSecret are the account's credentials; both are
	// required. The secret is sent only in its header, and scrubbed from
	// every answer (redact.Secrets, with its lower bound on length), so
	// that no error or contact the client returns holds it.
	ClientID     string
	ClientSecret string
	// EndpointIP is sent as X-Ipay-Endpoint-Ip when set.
	EndpointIP string
	// AuthCode is sent as X-Ipay-Auth-Code; empty means DefaultAuthCode.
	AuthCode string
	// HTTPClient sends the requests; nil means http.DefaultClient. Use
	// clients.NewHTTPClient for a pool sized for the service.
	HTTPClient *http.Client
	// Timeout bounds each request, reply body included; zero means
	// DefaultTimeout.
	Timeout time.Duration
	// LookupMaxPages bounds the pages of the contact list one Lookup reads;
	// zero means clients.DefaultMaxPages (50 pages of 100 contacts).
	LookupMaxPages int
	// LookupTimeout bounds one whole Lookup, every page included; zero
	// means three times Timeout. The caller's context bounds it too: a
	// handler's call timeout shorter than this is the real budget.
	LookupTimeout time.Duration
}

// Client calls the InstantPay Contact Book API. It is safe for concurrent
// use.
type Client struct {
	baseURL      string
	profileURL   string // baseURL + profilePath, made once: every create posts to it
	clientID     string
	clientSecret string
	endpointIP   string
	authCode     string
	hc           *http.Client
	timeout      time.Duration
	lookupPages  int
	lookupTime   time.Duration
	getHeaders   http.Header // sent on every request
	postHeaders  http.Header // and with a body
	secrets      *redact.Secrets
}

// New returns a Client for cfg, or an error when a credential is missing or
// the base URL is not an http(s) URL.
func New(cfg Config) (*Client, error) {
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("instantpay: the client id and the client secret are required")
	}
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("instantpay: base URL %q is not an http(s) URL", base)
	}
	c := &Client{
		baseURL:      strings.TrimSuffix(base, "/"),
		clientID:     cfg.ClientID,
		clientSecret: cfg.ClientSecret,
		endpointIP:   cfg.EndpointIP,
		authCode:     cfg.AuthCode,
		hc:           cfg.HTTPClient,
		timeout:      cfg.Timeout,
		lookupPages:  cfg.LookupMaxPages,
		lookupTime:   cfg.LookupTimeout,
		secrets:      redact.NewSecrets(cfg.ClientSecret),
	}
	c.profileURL = c.baseURL + profilePath
	if c.authCode == "" {
		c.authCode = DefaultAuthCode
	}
	if c.hc == nil {
		c.hc = http.DefaultClient
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.lookupPages <= 0 {
		c.lookupPages = clients.DefaultMaxPages
	}
	if c.lookupTime <= 0 {
		c.lookupTime = 3 * c.timeout
	}
	c.getHeaders = http.Header{}
	c.getHeaders.Set("X-Ipay-Auth-Code", c.authCode)
	c.getHeaders.Set("X-Ipay-Client-Id", c.clientID)
	c.getHeaders.Set("X-Ipay-Client-Secret", c.clientSecret)
	if c.endpointIP != "" {
		c.getHeaders.Set("X-Ipay-Endpoint-Ip", c.endpointIP)
	}
	c.getHeaders.Set("Accept", "application/json")
	c.postHeaders = c.getHeaders.Clone()
	c.postHeaders.Set("Content-Type", "application/json")
	return c, nil
}

// Validate returns the rules the command breaks for InstantPay, or nil:
// rules.CheckInstantPay, the one definition the client applies too.
func (c *Client) Validate(cmd contact.Command) []contact.FieldError {
	return rules.CheckInstantPay(cmd)
}

// send makes one request to target (a path and query under the base URL),
// bounded by the client's timeout, and returns the reply read whole,
// scrubbed of the client secret, as is any error.
func (c *Client) send(ctx context.Context, call clients.Call, method, target string, body []byte) (clients.Reply, error) {
	call.Secrets = c.secrets
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > c.timeout {
		// A caller's earlier deadline (the handler's call timeout) bounds
		// the request already: no second timer.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	// The request carries the write trace from the start: not copied to
	// carry it.
	ctx, traced := clients.TraceWrites(ctx)
	u := c.profileURL
	if target != profilePath {
		u = c.baseURL + target
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return clients.Reply{}, &provider.Error{
			Provider: Name, Op: call.Op, Class: provider.Permanent,
			Message: "cannot build the request", Err: fmt.Errorf("build request: %w", err),
		}
	}
	// One set of headers made once, shared read-only by every request
	// (the transport and the client only read them; a RoundTripper that
	// adds some, as tracing's, clones the request first).
	if body != nil {
		req.Header = c.postHeaders
	} else {
		req.Header = c.getHeaders
	}
	return call.DoTraced(c.hc, req, traced)
}
