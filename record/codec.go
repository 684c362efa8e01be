package record

import (
	"strconv"
	"time"

	"github.com/contactrelay/contactrelay/contact"
)

// appendJSON appends the record's JSON encoding to b: what json.Marshal
// writes, without its reflection (records are written twice per command).
func (r Record) appendJSON(b []byte) ([]byte, error) {
	b = append(b, '{')
	if r.Version != 0 {
		b = append(b, `"v":`...)
		b = strconv.AppendInt(b, int64(r.Version), 10)
		b = append(b, ',')
	}
	b = append(b, `"commandId":`...)
	b = contact.AppendString(b, r.CommandID)
	if r.Fingerprint != "" {
		b = append(b, `,"fingerprint":`...)
		b = contact.AppendString(b, r.Fingerprint)
	}
	if !r.FirstUsed.IsZero() {
		b = append(b, `,"firstUsed":`...)
		b = appendTime(b, r.FirstUsed)
	}
	if c := r.Contact; c != nil {
		b = append(b, `,"contact":{"provider":`...)
		b = contact.AppendString(b, c.Provider)
		b = append(b, `,"id":`...)
		b = contact.AppendString(b, c.ID)
		if len(c.Upstream) > 0 {
			b = append(b, `,"upstream":`...)
			var err error
			if b, err = contact.AppendObject(b, c.Upstream); err != nil {
				return nil, err
			}
		}
		b = append(b, `,"createdAt":`...)
		b = appendTime(b, c.CreatedAt)
		b = append(b, '}')
	}
	if r.ContactFingerprint != "" {
		b = append(b, `,"contactFingerprint":`...)
		b = contact.AppendString(b, r.ContactFingerprint)
	}
	if r.Unsettled {
		b = append(b, `,"unsettled":true`...)
	}
	if r.InFlight {
		b = append(b, `,"inFlight":true`...)
	}
	if r.HoldMillis != 0 {
		b = append(b, `,"holdMs":`...)
		b = strconv.AppendInt(b, r.HoldMillis, 10)
	}
	if u := r.LastFailure; u != nil {
		b = append(b, `,"lastFailure":`...)
		b = appendUpstream(b, u)
	}
	if len(r.Answers) > 0 {
		b = append(b, `,"answers":[`...)
		for i, a := range r.Answers {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"at":`...)
			b = appendTime(b, a.At)
			b = append(b, `,"class":`...)
			b = contact.AppendString(b, a.Class)
			b = append(b, `,"upstream":`...)
			b = appendUpstream(b, &a.Upstream)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if len(r.Generations) > 0 {
		b = append(b, `,"generations":{`...)
		var names [MaxGenerations]string
		for i, k := range sortedGenerations(names[:0], r.Generations) {
			g := r.Generations[k]
			if i > 0 {
				b = append(b, ',')
			}
			b = contact.AppendString(b, k)
			b = append(b, `:{"attempts":`...)
			b = strconv.AppendInt(b, int64(g.Attempts), 10)
			if len(g.Outcome) > 0 {
				b = append(b, `,"outcome":`...)
				b = append(b, g.Outcome...)
			}
			if g.Provider != "" {
				b = append(b, `,"provider":`...)
				b = contact.AppendString(b, g.Provider)
			}
			if g.Reason != "" {
				b = append(b, `,"reason":`...)
				b = contact.AppendString(b, string(g.Reason))
			}
			if g.Order != 0 {
				b = append(b, `,"order":`...)
				b = strconv.AppendInt(b, int64(g.Order), 10)
			}
			if g.OutcomeLine != 0 {
				b = append(b, `,"outcomeLine":`...)
				b = strconv.AppendInt(b, int64(g.OutcomeLine), 10)
			}
			if g.Fingerprint != "" {
				b = append(b, `,"fingerprint":`...)
				b = contact.AppendString(b, g.Fingerprint)
			}
			if g.Sequence != 0 {
				b = append(b, `,"seq":`...)
				b = strconv.AppendUint(b, g.Sequence, 10)
			}
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	if r.Order != 0 {
		b = append(b, `,"order":`...)
		b = strconv.AppendInt(b, int64(r.Order), 10)
	}
	if !r.InFlightUntil.IsZero() {
		b = append(b, `,"inFlightUntil":`...)
		b = appendTime(b, r.InFlightUntil)
	}
	return append(b, '}'), nil
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendUpstream appends a provider's answer as json.Marshal writes
// contact.Upstream.
func appendUpstream(b []byte, u *contact.Upstream) []byte {
	b = append(b, '{')
	first := true
	field := func(name string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, `":`...)
	}
	if u.HTTPStatus != 0 {
		field("httpStatus")
		b = strconv.AppendInt(b, int64(u.HTTPStatus), 10)
	}
	for _, kv := range [...][2]string{{"code", u.Code}, {"message", u.Message}, {"requestId", u.RequestID}} {
		if kv[1] != "" {
			field(kv[0])
			b = contact.AppendString(b, kv[1])
		}
	}
	return append(b, '}')
}
