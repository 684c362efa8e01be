package redact

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Marker is what Secrets puts in place of a secret.
const Marker = "[REDACTED]"

// MinSecretLen is the length in bytes under which a secret is not
// scrubbed. A secret that short would match ordinary text (scrubbing "abc"
// would mangle every word and id holding it, a provider's answers
// included) while protecting little: it can be guessed. Such a secret is
// left as it is, silently; refuse it where it is configured if it matters.
const MinSecretLen = 8

// MaxRotating is how many rotating secrets (see Secrets.Add) a Secrets
// keeps, newest first: enough for the tokens of the last several hours at
// PIK's 30-minute lifetime, few enough that every scrub stays cheap.
const MaxRotating = 16

// Secrets scrubs known secrets (credentials, access tokens) from text that
// came from outside, such as a provider's answer, replacing each occurrence
// with Marker: as it is, as a part of a longer string, in the forms JSON
// encoders escape it to (\/, \u0026, …), and, in JSON text, in any escaped
// form (Bytes decodes every string that holds an escape).
//
// It holds fixed secrets, given to NewSecrets, and up to MaxRotating
// rotating ones, given to Add, such as the access tokens a client was
// issued. Secrets shorter than MinSecretLen are ignored. The work of a scrub
// is linear in the length of the text for each secret held (overlapping
// occurrences of a secret that repeats itself cost more, in proportion to
// how often it does). A nil *Secrets holds none and returns its input. It
// is safe for concurrent use.
type Secrets struct {
	mu       sync.Mutex // serialises Add
	fixed    []string
	rotating []string // oldest first
	set      atomic.Pointer[secretSet]
}

// secretSet is an immutable snapshot of what to scrub.
type secretSet struct {
	secrets []string // the secrets as they are
	forms   []string // the secrets and their JSON-escaped forms, longest first
}

// NewSecrets returns a Secrets holding secrets as fixed secrets.
func NewSecrets(secrets ...string) *Secrets {
	s := &Secrets{}
	for _, v := range secrets {
		if len(v) >= MinSecretLen && !slices.Contains(s.fixed, v) {
			s.fixed = append(s.fixed, v)
		}
	}
	s.rebuild()
	return s
}

// Add holds secret as a rotating secret, dropping the oldest beyond
// MaxRotating. A secret held already, or shorter than MinSecretLen, changes
// nothing.
func (s *Secrets) Add(secret string) {
	if len(secret) < MinSecretLen {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(s.fixed, secret) || slices.Contains(s.rotating, secret) {
		return
	}
	s.rotating = append(s.rotating, secret)
	if len(s.rotating) > MaxRotating {
		s.rotating = slices.Delete(s.rotating, 0, len(s.rotating)-MaxRotating)
	}
	s.rebuild()
}

// rebuild stores a new snapshot of the secrets; s.mu is held or s is new.
func (s *Secrets) rebuild() {
	set := &secretSet{secrets: slices.Concat(s.fixed, s.rotating)}
	for _, v := range set.secrets {
		for _, f := range escapedForms(v) {
			if !slices.Contains(set.forms, f) {
				set.forms = append(set.forms, f)
			}
		}
	}
	slices.SortStableFunc(set.forms, func(a, b string) int { return len(b) - len(a) })
	s.set.Store(set)
}

// escapedForms returns v and the forms JSON encoders commonly write it in:
// with and without HTML escaping, and with "/" escaped as "\/".
func escapedForms(v string) []string {
	forms := []string{v}
	for _, html := range []bool{true, false} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		_ = enc.Encode(v) // a string always encodes
		f := strings.TrimSuffix(b.String(), "\n")
		f = f[1 : len(f)-1]
		forms = append(forms, f, strings.ReplaceAll(f, "/", `\/`))
	}
	return forms
}

func (s *Secrets) snapshot() *secretSet {
	if s == nil {
		return nil
	}
	set := s.set.Load()
	if set == nil || len(set.forms) == 0 {
		return nil
	}
	return set
}

// String returns text with every secret, in any of its literal forms,
// replaced with Marker; text itself when it holds none.
func (s *Secrets) String(text string) string {
	set := s.snapshot()
	if set == nil {
		return text
	}
	return set.replace(text)
}

// Bytes returns b with every secret replaced with Marker, b itself when it
// holds none. When b holds JSON, every string with an escape in it is
// decoded, and one whose text holds a secret is written again, scrubbed,
// so that no escaped form survives; text that is not JSON is scrubbed of
// the literal forms only. A scrubbed JSON document stays valid JSON,
// unless a secret occurs outside a string (as a number, say).
func (s *Secrets) Bytes(b []byte) []byte {
	set := s.snapshot()
	if set == nil {
		return b
	}
	b = set.jsonStrings(b)
	for _, f := range set.forms {
		if bytes.Contains(b, []byte(f)) {
			return []byte(set.replace(string(b)))
		}
	}
	return b
}

// replace returns text with every occurrence of every form replaced with
// Marker; overlapping occurrences are replaced as one.
func (set *secretSet) replace(text string) string {
	type span struct{ start, end int }
	var spans []span
	for _, f := range set.forms {
		for i := 0; i < len(text); {
			j := strings.Index(text[i:], f)
			if j < 0 {
				break
			}
			spans = append(spans, span{i + j, i + j + len(f)})
			i += j + 1 // overlapping occurrences too
		}
	}
	if len(spans) == 0 {
		return text
	}
	slices.SortFunc(spans, func(a, b span) int { return a.start - b.start })
	var b strings.Builder
	b.Grow(len(text))
	last := 0
	for k := 0; k < len(spans); {
		start, end := spans[k].start, spans[k].end
		for k++; k < len(spans) && spans[k].start <= end; k++ {
			end = max(end, spans[k].end)
		}
		b.WriteString(text[last:start])
		b.WriteString(Marker)
		last = end
	}
	b.WriteString(text[last:])
	return b.String()
}

// contains reports whether text holds a secret as it is.
func (set *secretSet) contains(text string) bool {
	for _, v := range set.secrets {
		if strings.Contains(text, v) {
			return true
		}
	}
	return false
}

// jsonStrings rewrites, scrubbed, every JSON string in b that has an escape
// in it and whose decoded text holds a secret. b is returned as it is when
// none does; text that is not JSON is left to the literal pass.
func (set *secretSet) jsonStrings(b []byte) []byte {
	if bytes.IndexByte(b, '\\') < 0 {
		return b
	}
	var out []byte
	last := 0
	for i := 0; i < len(b); {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			break
		}
		open := i + q
		end := closingQuote(b, open)
		if end < 0 {
			break
		}
		i = end + 1
		token := b[open : end+1]
		if bytes.IndexByte(token, '\\') < 0 {
			continue
		}
		var text string
		if json.Unmarshal(token, &text) != nil || !set.contains(text) {
			continue
		}
		enc, err := json.Marshal(set.replace(text))
		if err != nil {
			continue
		}
		out = append(append(out, b[last:open]...), enc...)
		last = end + 1
	}
	if out == nil {
		return b
	}
	return append(out, b[last:]...)
}

// closingQuote returns the index of the quote that closes the JSON string
// opened at b[open], or -1.
func closingQuote(b []byte, open int) int {
	for j := open + 1; j < len(b); {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return -1
		}
		end := j + k
		n := 0
		for p := end - 1; p > open && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return end
		}
		j = end + 1
	}
	return -1
}
