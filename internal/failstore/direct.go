package failstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// apiPrefix returns the subject prefix of js's API requests.
func apiPrefix(js jetstream.JetStream) string {
	o := js.Options()
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		if !strings.HasSuffix(o.APIPrefix, ".") {
			return o.APIPrefix + "."
		}
		return o.APIPrefix
	}
	return jetstream.DefaultAPIPrefix
}

// directMsg is a message a direct get answered.
type directMsg struct {
	subject string
	header  nats.Header
	data    []byte
	seq     uint64
}

// nextDirect returns stream's first message at or after sequence start on
// filter, with one direct get; nil when there is none. It makes no
// consumer and asks for no batch: the server counts what is pending over
// the whole stream for either (0.2 s and more at a million entries),
// while the get of the next message skips a run of removed messages in
// one request.
func nextDirect(ctx context.Context, js jetstream.JetStream, stream string, start uint64, filter string) (*directMsg, error) {
	if filter == "" {
		filter = ">"
	}
	req, _ := json.Marshal(struct {
		Seq  uint64 `json:"seq"`
		Next string `json:"next_by_subj"`
	}{start, filter})
	msg, err := js.Conn().RequestWithContext(ctx, apiPrefix(js)+"DIRECT.GET."+stream, req)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	switch status := msg.Header.Get("Status"); status {
	case "":
	case "404": // nothing at or after start
		return nil, nil
	default:
		return nil, fmt.Errorf("read stream %s: direct get: %s %s", stream, status, msg.Header.Get("Description"))
	}
	seq, err := strconv.ParseUint(msg.Header.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, errors.New("direct get: an answer without its sequence"))
	}
	return &directMsg{subject: msg.Header.Get(jetstream.SubjectHeader), header: msg.Header, data: msg.Data, seq: seq}, nil
}

// newestAtOrBelow returns the sequence of the newest message on filter
// at or below top, knowing one at lo (lo <= top): a bisection of next
// gets, about log2(top-lo) of them.
func newestAtOrBelow(ctx context.Context, js jetstream.JetStream, stream string, lo, top uint64, filter string) (uint64, error) {
	hi := top
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		m, err := nextDirect(ctx, js, stream, mid, filter)
		if err != nil {
			return 0, err
		}
		if m == nil || m.seq > top {
			hi = mid - 1
			continue
		}
		lo = m.seq
	}
	return lo, nil
}

// NextEntry returns the store's first entry at or after sequence start, as
// its headers tell it, with one direct get (no consumer, whose making has
// the server count what is pending); nil when there is none. A reader
// that follows the store reads a few new entries so.
func NextEntry(ctx context.Context, js jetstream.JetStream, start uint64) (*Summary, error) {
	m, err := nextDirect(ctx, js, Stream, start, "")
	if err != nil || m == nil {
		return nil, err
	}
	s := summarize(m.seq, m.subject, m.header)
	s.Size = len(m.data)
	return &s, nil
}
