package sandbox

import (
	"bytes"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// InstantPayConfig configures NewInstantPay. The zero value accepts any
// credentials and answers at once.
type InstantPayConfig struct {
	// ClientID and ClientSecret are the expected X-Ipay-Client-Id and
	// X-Ipay-Client-Secret; empty accepts any non-empty value.
	ClientID     string
	ClientSecret string
	// Latency delays every answer except the admin endpoints'.
	Latency time.Duration
	// Now is the clock for timestamps; nil means time.Now.
	Now func() time.Time
	// Paging is how GET /contacts/profile pages the list; the zero value
	// pages only when asked (see ListPaging). Query parameters that filter
	// (email=, mobile=, search=) are ignored, as an API may ignore them, so
	// that a client's lookup walks every page.
	Paging ListPaging
	// PageSize is the page size when a paged request names no limit; zero
	// means DefaultPageSize.
	PageSize int
	// MaxPageSize is the largest limit honoured; zero means
	// DefaultMaxPageSize.
	MaxPageSize int
	// NewestFirst lists the newest contacts first; by default the oldest
	// come first.
	NewestFirst bool
}

// InstantPay is an in-memory stand-in of InstantPay's Contact Book API (see
// the package doc). It is safe for concurrent use; Close releases hanging
// requests.
type InstantPay struct {
	harness
	cfg    InstantPayConfig
	userID string
}

// NewInstantPay returns an InstantPay sandbox with no contacts and no faults.
func NewInstantPay(cfg InstantPayConfig) *InstantPay {
	p := &InstantPay{cfg: cfg}
	p.init("InstantPay", cfg.Latency, cfg.Now, p.failure, instantPayDuplicateKey)
	p.userID = p.newID()
	p.mux.Handle("POST /contacts/profile", p.routeCreate(p.authorized(p.create)))
	p.mux.Handle("GET /contacts/profile", p.route(p.authorized(p.list)))
	return p
}

// ServeHTTP answers one request to the InstantPay API or the admin endpoints.
func (p *InstantPay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.serve(w, r)
}

// instantPayReply is the envelope of every InstantPay answer.
type instantPayReply struct {
	StatusCode   string  `json:"statuscode"`
	ActCode      *string `json:"actcode"`
	Status       string  `json:"status"`
	Data         any     `json:"data"`
	Timestamp    string  `json:"timestamp"`
	IpayUUID     string  `json:"ipay_uuid"`
	OrderID      *string `json:"orderid"`
	Environment  string  `json:"environment"`
	InternalCode *string `json:"internalCode"`
}

// envelope wraps data in an InstantPay answer with fresh identifiers.
func (p *InstantPay) envelope(code, status string, data any) instantPayReply {
	return instantPayReply{
		StatusCode:  code,
		Status:      status,
		Data:        data,
		Timestamp:   p.now().In(time.FixedZone("IST", 5*3600+1800)).Format(time.DateTime),
		IpayUUID:    "SBX" + strings.ToUpper(p.newID()),
		Environment: environment,
	}
}

// failure is InstantPay's error reply for f: the failure in the body, HTTP
// 200 unless f says otherwise.
func (p *InstantPay) failure(f Fault) reply {
	status, code, msg := f.Status, f.Code, f.Message
	if status == 0 {
		status = http.StatusOK
	}
	if code == "" {
		code = "ISE"
	}
	if msg == "" {
		msg = "SANDBOX: injected fault"
	}
	return reply{status: status, retryAfter: f.RetryAfter, body: p.envelope(code, msg, nil)}
}

// refuse is a permanent InstantPay failure, answered with HTTP 200.
func (p *InstantPay) refuse(code, msg string) reply {
	return reply{status: http.StatusOK, body: p.envelope(code, msg, nil)}
}

// authorized checks the credential headers before fn.
func (p *InstantPay) authorized(fn handlerFunc) handlerFunc {
	return func(r *http.Request, body []byte) reply {
		id, secret := r.Header.Get("X-Ipay-Client-Id"), r.Header.Get("X-Ipay-Client-Secret")
		if !credentialMatches(id, p.cfg.ClientID) || !credentialMatches(secret, p.cfg.ClientSecret) {
			return p.refuse("IAC", "Invalid access credentials (SANDBOX)")
		}
		if r.Header.Get("X-Ipay-Auth-Code") == "" {
			return p.refuse("IAC", "Invalid access credentials (SANDBOX: X-Ipay-Auth-Code header missing)")
		}
		return fn(r, body)
	}
}

// instantPayCreate is the body of POST /contacts/profile.
type instantPayCreate struct {
	Name        string `json:"name"`
	Email       string `json:"email"`
	Mobile      string `json:"mobile"`
	CompanyName string `json:"companyName"`
	TagDetails  []struct {
		TagID string `json:"tagId"`
	} `json:"tagDetails"`
}

// create stores a contact; duplicates are stored too, as the real API does.
func (p *InstantPay) create(_ *http.Request, body []byte) reply {
	in, raw, err := decodeInstantPayCreate(body)
	if err != nil {
		return p.refuse("RPI", "Invalid request parameters (SANDBOX): "+err.Error())
	}
	c := Contact{
		ID:        p.newID(),
		Name:      in.Name,
		Email:     in.Email,
		Mobile:    in.Mobile,
		CreatedAt: p.now(),
		Body:      raw,
	}
	p.store(c, nil)
	rep := p.envelope("TXN", "Contact created successfully (SANDBOX: no real contact)", p.view(c))
	orderID := "SBX" + p.newID()
	rep.OrderID = &orderID
	return reply{status: http.StatusOK, body: rep}
}

// list answers the stored contacts, whole or a page at a time as
// cfg.Paging says.
func (p *InstantPay) list(r *http.Request, _ []byte) reply {
	contacts := ordered(p.Contacts(), p.cfg.NewestFirst)
	q := r.URL.Query()
	paged := p.cfg.Paging == PagingAlways ||
		(p.cfg.Paging == PagingWhenAsked && (q.Has("page") || q.Has("limit")))
	const fetched = "Contacts fetched successfully (SANDBOX: no real contacts)"
	if !paged {
		data := make([]map[string]any, len(contacts))
		for i, c := range contacts {
			data[i] = p.view(c)
		}
		return reply{status: http.StatusOK, body: p.envelope("TXN", fetched, data)}
	}
	size, maxSize := p.cfg.PageSize, p.cfg.MaxPageSize
	if size <= 0 {
		size = DefaultPageSize
	}
	if maxSize <= 0 {
		maxSize = DefaultMaxPageSize
	}
	pageNum, limit, ok := pageQuery(q, "page", "limit", size, maxSize)
	if !ok {
		return p.refuse("RPI", "Invalid request parameters (SANDBOX): page and limit must be positive whole numbers")
	}
	total := len(contacts)
	from, to := pageBounds(total, pageNum, limit)
	docs := make([]map[string]any, 0, to-from)
	for _, c := range contacts[from:to] {
		docs = append(docs, p.view(c))
	}
	pages := max(1, pagesOf(total, limit))
	var prev, next any
	if pageNum > 1 {
		prev = pageNum - 1
	}
	if to < total {
		next = pageNum + 1
	}
	return reply{status: http.StatusOK, body: p.envelope("TXN", fetched, map[string]any{
		"docs":          docs,
		"totalDocs":     total,
		"limit":         limit,
		"page":          pageNum,
		"totalPages":    pages,
		"pagingCounter": from + 1,
		"hasPrevPage":   prev != nil,
		"hasNextPage":   next != nil,
		"prevPage":      prev,
		"nextPage":      next,
	})}
}

// view is a stored contact as InstantPay shows it in data.
func (p *InstantPay) view(c Contact) map[string]any {
	tags := []string{}
	details, _ := c.Body["tagDetails"].([]any)
	for _, d := range details {
		if m, ok := d.(map[string]any); ok {
			if id, ok := m["tagId"].(string); ok {
				tags = append(tags, id)
			}
		}
	}
	v := map[string]any{
		"_id":    c.ID,
		"userId": p.userID,
		"name":   c.Name,
		"email":  c.Email,
		"mobile": c.Mobile,
		"tagId":  tags,
	}
	if company, ok := c.Body["companyName"].(string); ok && company != "" {
		v["companyName"] = company
	}
	return v
}

// decodeInstantPayCreate decodes and checks a create body, naming every
// problem found.
func decodeInstantPayCreate(body []byte) (instantPayCreate, map[string]any, error) {
	var in instantPayCreate
	if len(body) > maxBody {
		return in, nil, errors.New("request body too large")
	}
	raw, err := decodeObject(body)
	if err != nil {
		return in, nil, err
	}
	if err := json.Unmarshal(body, &in); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return in, nil, fmt.Errorf("%s has the wrong JSON type", typeErr.Field)
		}
		return in, nil, errors.New("request body is not valid JSON")
	}
	var errs []error
	if name := strings.TrimSpace(in.Name); name == "" || utf8.RuneCountInString(name) > 200 {
		errs = append(errs, errors.New("name is required, up to 200 characters"))
	}
	if !validEmail(in.Email) {
		errs = append(errs, errors.New("email is not a valid email address"))
	}
	if !validMobile(in.Mobile) {
		errs = append(errs, errors.New("mobile must be 10 to 15 digits, with an optional leading +"))
	}
	if utf8.RuneCountInString(in.CompanyName) > 200 {
		errs = append(errs, errors.New("companyName is longer than 200 characters"))
	}
	if len(in.TagDetails) == 0 {
		errs = append(errs, errors.New("tagDetails must hold at least one tagId"))
	}
	for i, t := range in.TagDetails {
		if b, err := hex.DecodeString(t.TagID); err != nil || len(b) != 12 {
			errs = append(errs, fmt.Errorf("tagDetails[%d].tagId must be 24 hexadecimal characters", i))
		}
	}
	return in, raw, errors.Join(errs...)
}

// instantPayDuplicateKey is the email (ignoring case) and mobile digits.
func instantPayDuplicateKey(c Contact) string {
	return strings.ToLower(strings.TrimSpace(c.Email)) + "|" + digits(c.Mobile)
}

// decodeObject decodes a JSON object, keeping numbers as json.Number.
func decodeObject(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, errors.New("request body is not a JSON object")
	}
	if dec.More() {
		return nil, errors.New("request body holds more than one JSON value")
	}
	return m, nil
}

// credentialMatches reports whether got is acceptable where want is
// expected: any non-empty value when want is empty.
func credentialMatches(got, want string) bool {
	if want == "" {
		return got != ""
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// validEmail is a lenient check: one @ between a non-empty local part and
// a domain with a dot, no spaces.
func validEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && strings.Contains(domain, ".") &&
		!strings.ContainsAny(domain, "@") && !strings.ContainsAny(s, " \t\r\n") &&
		!strings.HasPrefix(domain, ".") && !strings.HasSuffix(domain, ".")
}

// validMobile reports whether s is 10 to 15 digits with an optional
// leading plus.
func validMobile(s string) bool {
	d := strings.TrimPrefix(s, "+")
	return len(d) >= 10 && len(d) <= 15 && digits(d) == d
}

// digits returns the ASCII digits of s.
func digits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}
