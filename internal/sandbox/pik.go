package sandbox

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultTokenTTL is the lifetime of a PIK token when PIKConfig.TokenTTL is
// zero, as documented for the real API.
const DefaultTokenTTL = 30 * time.Minute

// PIKConfig configures NewPIK. The zero value accepts any credentials,
// issues tokens for 30 minutes and answers at once.
type PIKConfig struct {
	// AppID and AppSecret are the expected credentials of POST /auth/token;
	// empty accepts any non-empty value.
	AppID     string
	AppSecret string
	// TokenTTL is how long a token lasts, in whole seconds (at least one);
	// zero means DefaultTokenTTL. Make it short to exercise token refresh.
	TokenTTL time.Duration
	// Latency delays every answer except the admin endpoints'.
	Latency time.Duration
	// Now is the clock for tokens and timestamps; nil means time.Now.
	Now func() time.Time
	// MaxPageSize caps the pageSize of GET /api/v1/contact/list: a larger
	// one gets pages of this size, as the reply's pageSize says. Zero
	// honours any pageSize up to 1000 and refuses a larger one.
	MaxPageSize int
	// NewestFirst lists the newest contacts first; by default the oldest
	// come first.
	NewestFirst bool
}

// PIK is an in-memory stand-in of PIK Global Account's token and contact
// API (see the package doc). It is safe for concurrent use; Close releases
// hanging requests.
type PIK struct {
	harness
	cfg           PIKConfig
	ttlSeconds    int64
	tokens        tokenSigner
	tokenRequests atomic.Int64
}

// NewPIK returns a PIK sandbox with no contacts, no faults and a fresh
// token-signing key.
func NewPIK(cfg PIKConfig) *PIK {
	p := &PIK{cfg: cfg, tokens: newTokenSigner()}
	p.ttlSeconds = int64(DefaultTokenTTL / time.Second)
	if cfg.TokenTTL != 0 {
		p.ttlSeconds = max(1, int64(cfg.TokenTTL/time.Second))
	}
	p.init("PIK", cfg.Latency, cfg.Now, pikFailure, func(c Contact) string { return c.ContactCode })
	p.extraCounts = func() map[string]any { return map[string]any{"tokenRequests": p.TokenRequests()} }
	p.mux.Handle("POST /auth/token", p.route(p.token))
	p.mux.Handle("POST /api/v1/contact/create", p.routeCreate(p.authorized(p.create)))
	p.mux.Handle("GET /api/v1/contact/list", p.route(p.authorized(p.list)))
	return p
}

// ServeHTTP answers one request to the PIK API or the admin endpoints.
func (p *PIK) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.serve(w, r)
}

// TokenRequests returns how many token requests the sandbox received,
// including refused ones.
func (p *PIK) TokenRequests() int {
	return int(p.tokenRequests.Load())
}

// pikReply is the envelope of every PIK answer.
type pikReply struct {
	Code        any    `json:"code"`
	Message     string `json:"message"`
	Data        any    `json:"data"`
	Environment string `json:"environment"`
}

// pikAnswer is a PIK answer with the code both in the body and as the HTTP
// status, as PIK does for token and authorization failures.
func pikAnswer(status int, msg string, data any) reply {
	return reply{status: status, body: pikReply{Code: status, Message: msg, Data: data, Environment: environment}}
}

// pikRefusal is a PIK failure answered in the body, with HTTP 200.
func pikRefusal(code int, msg string) reply {
	return reply{status: http.StatusOK, body: pikReply{Code: code, Message: msg, Environment: environment}}
}

// pikFailure is PIK's error reply for f.
func pikFailure(f Fault) reply {
	status := f.Status
	if status == 0 {
		status = http.StatusOK
	}
	var code any = f.Status
	if f.Code != "" {
		code = f.Code
		if n, err := strconv.Atoi(f.Code); err == nil {
			code = n
		}
	}
	msg := f.Message
	if msg == "" {
		msg = "SANDBOX: injected fault"
	}
	return reply{status: status, retryAfter: f.RetryAfter,
		body: pikReply{Code: code, Message: msg, Environment: environment}}
}

// token issues a token for valid credentials.
func (p *PIK) token(_ *http.Request, body []byte) reply {
	p.tokenRequests.Add(1)
	var in struct {
		AppID     string `json:"appId"`
		AppSecret string `json:"appSecret"`
	}
	if len(body) > maxBody || json.Unmarshal(body, &in) != nil {
		return pikAnswer(http.StatusBadRequest, "SANDBOX: body must be {\"appId\": …, \"appSecret\": …}", nil)
	}
	if !credentialMatches(in.AppID, p.cfg.AppID) || !credentialMatches(in.AppSecret, p.cfg.AppSecret) {
		return pikAnswer(http.StatusUnauthorized, "invalid appId or appSecret", nil)
	}
	now := p.now()
	token := p.tokens.sign(tokenClaims{
		Subject:  in.AppID,
		IssuedAt: now.Unix(),
		Expires:  now.Unix() + p.ttlSeconds,
		Issuer:   "pik-sandbox",
		ID:       p.newID(),
	})
	return pikAnswer(http.StatusOK, "success", map[string]any{"token": token, "expiresIn": p.ttlSeconds})
}

// authorized checks the bearer token before fn.
func (p *PIK) authorized(fn handlerFunc) handlerFunc {
	return func(r *http.Request, body []byte) reply {
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || token == "" {
			return pikAnswer(http.StatusUnauthorized, errTokenInvalid.Error(), nil)
		}
		if _, err := p.tokens.verify(strings.TrimSpace(token), p.now()); err != nil {
			return pikAnswer(http.StatusUnauthorized, err.Error(), nil)
		}
		return fn(r, body)
	}
}

// create stores a contact unless its contactCode exists already.
func (p *PIK) create(_ *http.Request, body []byte) reply {
	if len(body) > maxBody {
		return pikRefusal(http.StatusBadRequest, "SANDBOX: request body too large")
	}
	raw, err := decodeObject(body)
	if err != nil {
		return pikRefusal(http.StatusBadRequest, "SANDBOX: "+err.Error())
	}
	fields, errs := map[string]string{}, []error(nil)
	for _, name := range []string{"contactCode", "displayName", "email", "phone"} {
		switch v := raw[name].(type) {
		case string:
			if strings.TrimSpace(v) == "" {
				errs = append(errs, errors.New(name+" is required"))
			}
			fields[name] = v
		case nil:
			errs = append(errs, errors.New(name+" is required"))
		default:
			errs = append(errs, errors.New(name+" must be a string"))
		}
	}
	if e := fields["email"]; e != "" && !validEmail(e) {
		errs = append(errs, errors.New("email is not a valid email address"))
	}
	if err := errors.Join(errs...); err != nil {
		msg := strings.ReplaceAll(err.Error(), "\n", "; ")
		return pikRefusal(http.StatusBadRequest, "SANDBOX: "+msg)
	}
	c := Contact{
		ID:          "sbx" + p.newID(),
		Name:        fields["displayName"],
		Email:       fields["email"],
		Mobile:      fields["phone"],
		ContactCode: fields["contactCode"],
		CreatedAt:   p.now(),
		Body:        raw,
	}
	if !p.store(c, func(s Contact) bool { return s.ContactCode == c.ContactCode }) {
		return pikRefusal(http.StatusConflict, "contactCode already exists (SANDBOX)")
	}
	return pikAnswer(http.StatusOK, "success", pikView(c.clone()))
}

// list answers the stored contacts whose contactCode, displayName or email
// contains the keyword (ignoring case), a page at a time: data.list with
// total, pageNum, pageSize, pages and hasNextPage.
func (p *PIK) list(r *http.Request, _ []byte) reply {
	q := r.URL.Query()
	pageNum, pageSize, ok := pageQuery(q, "pageNum", "pageSize", 10, p.cfg.MaxPageSize)
	if !ok || (p.cfg.MaxPageSize == 0 && pageSize > 1000) {
		return pikRefusal(http.StatusBadRequest, "SANDBOX: pageNum must be 1 or more, pageSize 1 to 1000")
	}
	keyword := strings.ToLower(q.Get("keyword"))
	matches := []map[string]any{}
	for _, c := range ordered(p.Contacts(), p.cfg.NewestFirst) {
		if strings.Contains(strings.ToLower(c.ContactCode), keyword) ||
			strings.Contains(strings.ToLower(c.Name), keyword) ||
			strings.Contains(strings.ToLower(c.Email), keyword) {
			matches = append(matches, pikView(c))
		}
	}
	total := len(matches)
	from, to := pageBounds(total, pageNum, pageSize)
	return pikAnswer(http.StatusOK, "success", map[string]any{
		"list":        matches[from:to],
		"total":       total,
		"pageNum":     pageNum,
		"pageSize":    pageSize,
		"pages":       pagesOf(total, pageSize),
		"hasNextPage": to < total,
	})
}

// pikView is a stored contact as PIK shows it: the body as received, with
// the id and createTime the sandbox gave it. It takes c's Body for its own.
func pikView(c Contact) map[string]any {
	v := c.Body
	v["id"] = c.ID
	v["createTime"] = c.CreatedAt.UTC().Format(time.DateTime)
	return v
}
