package failstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The exact-value index of the open failures: the stream
// CONTACT_FAILURE_INDEX, one empty message per value a failure's command
// holds, on the subject
//
//	contactrelay.failindex.<digest>.<key>
//
// where digest is the first 16 bytes of the SHA-256 of the value's folded
// form (IndexForm), in hex, and key the command's record key (two
// tokens), with at most one message per subject. A subject is therefore
// bounded whatever the value (5,000 characters, control characters): 23 +
// 32 + 1 + the key's bytes. Its headers hold the store sequence of the
// failure it was written for (HeaderFailureSeq) and that failure's
// reason and provider tokens (HeaderFailureAt).
//
// A lookup asks the server for a digest's subjects (a literal prefix, the
// server's subject index) and verifies every hit against the store: the
// failure the entry names is read by its exact subject, and kept only
// when its command really holds the value.
// A stale entry (a crash between the writer's steps, a race between
// writers) is therefore never answered, only read; the command's next
// write (its redelivery, a replay, a resolution) removes it.
//
// Indexed, per failure: the command's name, email, mobile (without its
// spaces, dashes and dots, when what is left is digits with an optional
// leading '+'), companyName, and the string values of its first
// MaxIndexedMetadata metadata keys in the order of their names: at most
// 4 + MaxIndexedMetadata writes, fewer when values repeat. Not indexed:
// tagId, provider, PIK's fields, further metadata, non-string values, a
// command kept only raw (malformed, or over 128 KiB), conflicts' entries;
// those are found by the substring search (Search). The commandId needs
// no index: the store is keyed by it.
//
// Each command has a manifest beside its entries, on the subject
//
//	contactrelay.failindex.k.<key>
//
// listing the digests its open failure is indexed under: removing a
// failure's entries (replaced, resolved, discarded) reads the manifest
// and deletes each entry by its exact subject. A purge or a read filtered
// by the key with a wildcard in front of it walks every digest the server
// holds (1.2 s per purge at 1,000,000 entries, measured by
// BenchmarkIndexLayout), while an exact get or delete costs about 0.2 ms;
// and the replaced failure's own body cannot tell its values, as the
// replacing one usually takes its subject in the store.

// Names of the index.
const (
	// IndexStream is the index's JetStream stream.
	IndexStream = "CONTACT_FAILURE_INDEX"
	// IndexSubjectPrefix starts every index entry's subject.
	IndexSubjectPrefix = "contactrelay.failindex."
	// IndexSubjects are the index stream's subjects.
	IndexSubjects = IndexSubjectPrefix + ">"
	// HeaderFailureSeq is the header of an index entry holding the store
	// sequence of the failure it was written for.
	HeaderFailureSeq = "Contact-Failure-Seq"
	// HeaderFailureAt is the header of an index entry holding the
	// reason and provider tokens of that failure's subject in the store,
	// so that a lookup reads the failure by its exact subject.
	HeaderFailureAt = "Contact-Failure-At"
	// MetadataIndexBuilt is the index stream's metadata key that records
	// that every open failure stored before it was set has been indexed
	// (IndexAll), or that there was none.
	MetadataIndexBuilt = "contactrelay.failindex.built"
	// MaxIndexedMetadata is how many metadata values of a command are
	// indexed: those of its first keys in the order of their names.
	MaxIndexedMetadata = 8
)

// digestBytes is how much of a value's SHA-256 names it in a subject.
const digestBytes = 16

// ErrNoIndex reports that the exact-value index is missing or not built
// yet, so that a lookup cannot answer: search by scanning instead.
var ErrNoIndex = errors.New("the exact-value index " + IndexStream + " is not built yet: run 'consumer setup'")

// IndexStreamConfig returns the index's stream configuration: file
// storage, one message per subject, no limits, direct gets for lookups.
func IndexStreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              IndexStream,
		Description:       "contactrelay exact-value index of the open failures: one entry per digest of a value and command",
		Subjects:          []string{IndexSubjects},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: 1,
		Discard:           jetstream.DiscardOld,
		AllowDirect:       true,
		Replicas:          max(replicas, 1),
	}
}

// IndexBuilt reports whether the index holds every open failure (the
// migration of a store older than the index has run).
func IndexBuilt(info *jetstream.StreamInfo) bool {
	_, ok := info.Config.Metadata[MetadataIndexBuilt]
	return ok
}

// IndexForm returns the folded form of a value under which it is
// indexed and looked up: surrounding white space trimmed, inner white
// space collapsed to one space, lower case.
func IndexForm(v string) string {
	return strings.ToLower(strings.Join(strings.Fields(v), " "))
}

// mobileIndexForm returns v without white space, dashes and dots when
// what is left is digits with an optional leading '+' (at least three
// digits), else "".
func mobileIndexForm(v string) string {
	s := strings.Map(func(r rune) rune {
		if r == '-' || r == '.' || unicode.IsSpace(r) {
			return -1
		}
		return r
	}, v)
	if len(strings.TrimPrefix(s, "+")) < 3 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] == '+' && i == 0) {
			return ""
		}
	}
	return s
}

// queryForms returns the forms a looked-up value may be indexed under:
// its folded form, and its mobile form when it reads as a mobile.
func queryForms(v string) []string {
	var out []string
	if f := IndexForm(v); f != "" {
		out = append(out, f)
	}
	if m := mobileIndexForm(v); m != "" && !slices.Contains(out, m) {
		out = append(out, m)
	}
	return out
}

// indexDigest names a form in a subject.
func indexDigest(form string) string {
	sum := sha256.Sum256([]byte(form))
	return hex.EncodeToString(sum[:digestBytes])
}

// indexSubject returns the subject of a form's entry for the command
// under key.
func indexSubject(form, key string) string {
	return IndexSubjectPrefix + indexDigest(form) + "." + key
}

// entryForms returns the distinct forms a failure's body (its failed
// event, as stored) is indexed under: at most 4 + MaxIndexedMetadata.
func entryForms(body []byte) []string {
	var ev struct {
		Data struct {
			Command    json.RawMessage `json:"command"`
			CommandRaw []byte          `json:"commandRaw"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &ev) != nil {
		return nil
	}
	cmd := ev.Data.Command
	if len(cmd) == 0 {
		cmd = ev.Data.CommandRaw // kept raw: indexed when it is a whole object
	}
	var members map[string]json.RawMessage
	if len(cmd) == 0 || json.Unmarshal(cmd, &members) != nil {
		return nil
	}
	var out []string
	add := func(form string) {
		if form != "" && !slices.Contains(out, form) {
			out = append(out, form)
		}
	}
	text := func(raw json.RawMessage) string {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return ""
		}
		return s
	}
	add(IndexForm(text(members["name"])))
	add(IndexForm(text(members["email"])))
	if m := text(members["mobile"]); mobileIndexForm(m) != "" {
		add(mobileIndexForm(m))
	} else {
		add(IndexForm(m))
	}
	add(IndexForm(text(members["companyName"])))
	var meta map[string]json.RawMessage
	if json.Unmarshal(members["metadata"], &meta) == nil {
		keys := make([]string, 0, len(meta))
		for k := range meta {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys[:min(len(keys), MaxIndexedMetadata)] {
			add(IndexForm(text(meta[k])))
		}
	}
	return out
}

// holds reports whether a failure's body is indexed under one of forms.
func holds(body []byte, forms []string) bool {
	for _, f := range entryForms(body) {
		if slices.Contains(forms, f) {
			return true
		}
	}
	return false
}

// manifestToken is the token that takes a digest's place in the subject
// of a command's manifest (no digest is one letter).
const manifestToken = "k"

// manifestSubject returns the subject of the manifest of the command
// under key: the digests its open failure is indexed under.
func manifestSubject(key string) string {
	return IndexSubjectPrefix + manifestToken + "." + key
}

// indexMsg is an index entry for the failure stored at seq, whose store
// subject has the reason and provider tokens at (none for a manifest).
func indexMsg(subject string, seq uint64, at string, body []byte) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Header.Set(HeaderFailureSeq, strconv.FormatUint(seq, 10))
	if at != "" {
		m.Header.Set(HeaderFailureAt, at)
	}
	m.Data = body
	return m
}

// subjectAt returns the reason and provider tokens of a store entry's
// subject ("<reason>.<provider>").
func subjectAt(subject string) string {
	parts := strings.SplitN(strings.TrimPrefix(subject, SubjectPrefix), ".", 3)
	if len(parts) < 3 {
		return ""
	}
	return parts[0] + "." + parts[1]
}

// manifestBody lists the digests of forms.
func manifestBody(forms []string) []byte {
	ds := make([]string, len(forms))
	for i, f := range forms {
		ds[i] = indexDigest(f)
	}
	return []byte(strings.Join(ds, " "))
}

// writeIndex writes the index entries of the failure stored at seq under
// key (at: its subject's reason and provider), one per form, and waits
// for the server to store them all.
func writeIndex(ctx context.Context, js jetstream.JetStream, key, at string, forms []string, seq uint64) error {
	acks := make([]jetstream.PubAckFuture, 0, len(forms))
	for _, f := range forms {
		ack, err := js.PublishMsgAsync(indexMsg(indexSubject(f, key), seq, at, nil), jetstream.WithExpectStream(IndexStream))
		if err != nil {
			return fmt.Errorf("index open failure: %w", err)
		}
		acks = append(acks, ack)
	}
	for _, ack := range acks {
		select {
		case <-ack.Ok():
		case err := <-ack.Err():
			return fmt.Errorf("index open failure: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("index open failure: %w", ctx.Err())
		}
	}
	return nil
}

// entrySeq reads the failure sequence of an index entry or manifest.
func entrySeq(m *jetstream.RawStreamMsg) uint64 {
	seq, _ := strconv.ParseUint(m.Header.Get(HeaderFailureSeq), 10, 64)
	return seq
}

// readManifest returns the manifest of the command under key, nil when
// there is none.
func readManifest(ctx context.Context, idx jetstream.Stream, key string) (*jetstream.RawStreamMsg, error) {
	m, err := idx.GetLastMsgForSubject(ctx, manifestSubject(key))
	if errors.Is(err, jetstream.ErrMsgNotFound) || isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read index manifest: %w", err)
	}
	return m, nil
}

// unindexDigests removes the index entries of the digests for the
// command under key that were written for a failure stored at or before
// sequence upTo: an entry rewritten since for a newer failure stays.
func unindexDigests(ctx context.Context, idx jetstream.Stream, key string, digests []string, upTo uint64) error {
	for _, d := range digests {
		m, err := idx.GetLastMsgForSubject(ctx, IndexSubjectPrefix+d+"."+key)
		if errors.Is(err, jetstream.ErrMsgNotFound) || isNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("unindex open failure: %w", err)
		}
		if entrySeq(m) > upTo {
			continue
		}
		if err := idx.DeleteMsg(ctx, m.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) && !isNotFound(err) {
			return fmt.Errorf("unindex open failure: %w", err)
		}
	}
	return nil
}

// reindex makes forms the index of the command under key, for its
// failure stored at seq: it writes their entries, removes those the
// manifest lists beside them (written for an older failure), and writes
// the manifest. A write that dies half-way leaves the older manifest,
// so that its redelivery removes what it lists; a manifest a newer
// failure wrote meanwhile is left as it is.
func reindex(ctx context.Context, js jetstream.JetStream, idx jetstream.Stream, key, at string, forms []string, seq uint64, step func()) error {
	if err := writeIndex(ctx, js, key, at, forms, seq); err != nil {
		return err
	}
	step()
	keep := strings.Fields(string(manifestBody(forms)))
	for range 3 {
		old, err := readManifest(ctx, idx, key)
		if err != nil {
			return err
		}
		var oldSeq uint64 // the manifest's sequence in the index stream
		if old != nil {
			if entrySeq(old) > seq {
				return nil // a newer failure's
			}
			var drop []string
			for _, d := range strings.Fields(string(old.Data)) {
				if !slices.Contains(keep, d) {
					drop = append(drop, d)
				}
			}
			if err := unindexDigests(ctx, idx, key, drop, seq-1); err != nil {
				return err
			}
			oldSeq = old.Sequence
		}
		_, err = js.PublishMsg(ctx, indexMsg(manifestSubject(key), seq, "", manifestBody(forms)),
			jetstream.WithExpectStream(IndexStream), jetstream.WithExpectLastSequencePerSubject(oldSeq))
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			continue // another writer's manifest came between: read it
		}
		if err != nil {
			return fmt.Errorf("index open failure: %w", err)
		}
		return nil
	}
	return nil
}

// unindexCommand removes the index of the command under key when its
// manifest was written for a failure stored at or before sequence upTo:
// the entries it lists (those written for such a failure), then itself.
func unindexCommand(ctx context.Context, idx jetstream.Stream, key string, upTo uint64) error {
	m, err := readManifest(ctx, idx, key)
	if err != nil || m == nil || entrySeq(m) > upTo {
		return err
	}
	if err := unindexDigests(ctx, idx, key, strings.Fields(string(m.Data)), upTo); err != nil {
		return err
	}
	if err := idx.DeleteMsg(ctx, m.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) && !isNotFound(err) {
		return fmt.Errorf("unindex open failure: %w", err)
	}
	return nil
}

// subjectKey returns the record key of a store entry's subject (its two
// tokens after the reason and the provider).
func subjectKey(subject string) string {
	parts := strings.SplitN(strings.TrimPrefix(subject, SubjectPrefix), ".", 5)
	if len(parts) < 4 {
		return ""
	}
	return parts[2] + "." + parts[3]
}

// indexGone reports an error of a write to the index because its stream
// is gone (deleted while a writer runs): the index is derived, so the
// store's own change goes on without it. Lookups then answer ErrNoIndex
// (a scan searches), and 'consumer setup' creates the index again and
// builds it from the store.
func indexGone(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrStreamNotFound) ||
		errors.Is(err, nats.ErrNoResponders)
}

// indexStream returns the index's stream, nil when it does not exist (a
// store set up by a release before the index: nothing is indexed).
func indexStream(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, IndexStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", IndexStream, err)
	}
	return s, nil
}
