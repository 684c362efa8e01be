package failstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/natstest"
	"github.com/contactrelay/contactrelay/internal/provision"
	"github.com/contactrelay/contactrelay/record"
)

// failureEntry builds the entry of a failed generation of commandID whose
// command is cmd (JSON).
func failureEntry(t testing.TB, commandID, generation string, reason contact.Reason, cmd string) *failstore.Entry {
	t.Helper()
	f := contact.Failed{CommandID: commandID, Provider: "instantpay", Reason: reason, Retryable: reason.Retryable(),
		Message: "failed in " + generation, ReplayOf: generation, Command: json.RawMessage(cmd)}
	ev, err := events.NewEvent("", contact.SubjectFailed, commandID, generation, time.Now(), f)
	require.NoError(t, err)
	e, err := failstore.NewEntry(&ev, ev.AppendJSON(nil), false)
	require.NoError(t, err)
	return e
}

// indexSubjects returns the subjects of the values' entries the index
// holds, each once (the commands' manifests are counted by manifests).
func indexSubjects(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	var out []string
	for _, s := range allIndexSubjects(t, js) {
		if !strings.HasPrefix(s, failstore.IndexSubjectPrefix+"k.") {
			out = append(out, s)
		}
	}
	return out
}

// manifests counts the commands' manifests in the index.
func manifests(t *testing.T, js jetstream.JetStream) int {
	t.Helper()
	return len(allIndexSubjects(t, js)) - len(indexSubjects(t, js))
}

func allIndexSubjects(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, failstore.IndexStream)
	require.NoError(t, err)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(failstore.IndexSubjects))
	require.NoError(t, err)
	var out []string
	for subject, n := range info.State.Subjects {
		require.EqualValues(t, 1, n, "one entry per subject")
		out = append(out, subject)
	}
	slices.Sort(out)
	return out
}

// lookupIDs returns the commandIds a lookup of value finds.
func lookupIDs(t *testing.T, js jetstream.JetStream, value string) []string {
	t.Helper()
	found, err := failstore.Lookup(context.Background(), js, value, failstore.Select{}, 0)
	require.NoError(t, err)
	var ids []string
	for _, f := range found.Failures {
		ids = append(ids, f.CommandID)
	}
	slices.Sort(ids)
	return ids
}

func indexCount(t *testing.T, js jetstream.JetStream) int {
	t.Helper()
	return len(indexSubjects(t, js))
}

// The writer keeps the index exact: a failure's values are indexed when
// it opens, a replacing failure's values replace them (shared ones kept),
// and resolution and discard remove them.
func TestIndexFollowsOpenReplaceResolveDiscard(t *testing.T) {
	wd := newWorld(t)
	ctx := context.Background()
	first := `{"name":"Chen Sharma","email":"Chen@Example.com","mobile":"+91 98765 10011","companyName":"Acme","metadata":{"crmId":"CRM-10395"}}`
	require.NoError(t, wd.w.Open(ctx, failureEntry(t, "cmd-1", "", contact.ReasonInvalid, first), nil))
	assert.Equal(t, 5, indexCount(t, wd.js), "name, email, mobile, companyName, one metadata value")
	for _, v := range []string{"chen sharma", "  CHEN   Sharma ", "chen@example.COM", "+91 98765 10011", "+91-98765-10011", "+919876510011", "acme", "crm-10395", "cmd-1"} {
		assert.Equal(t, []string{"cmd-1"}, lookupIDs(t, wd.js, v), "found by %q", v)
	}
	assert.Empty(t, lookupIDs(t, wd.js, "chen"), "a part of a value is no exact value")

	// Replaced: the new email and CRM id are indexed, the old ones gone,
	// the shared name kept.
	second := `{"name":"Chen Sharma","email":"chen@example.org","mobile":"+919876510011","companyName":"Acme","metadata":{"crmId":"CRM-20000"}}`
	require.NoError(t, wd.w.Open(ctx, failureEntry(t, "cmd-1", "gen-2", contact.ReasonRejected, second), nil))
	assert.Equal(t, 5, indexCount(t, wd.js), "the replaced failure's own values are removed")
	assert.Empty(t, lookupIDs(t, wd.js, "chen@example.com"))
	assert.Empty(t, lookupIDs(t, wd.js, "CRM-10395"))
	assert.Equal(t, []string{"cmd-1"}, lookupIDs(t, wd.js, "crm-20000"))
	assert.Equal(t, []string{"cmd-1"}, lookupIDs(t, wd.js, "Chen Sharma"))

	// Another command shares the company.
	require.NoError(t, wd.w.Open(ctx, failureEntry(t, "cmd-2", "", contact.ReasonExhausted, `{"name":"Ada","companyName":"ACME "}`), nil))
	assert.Equal(t, []string{"cmd-1", "cmd-2"}, lookupIDs(t, wd.js, "acme"))

	// Resolved: every entry of cmd-1 goes, cmd-2's stay.
	require.NoError(t, wd.w.Resolve(ctx, "cmd-1", nil))
	assert.Equal(t, 2, indexCount(t, wd.js))
	assert.Equal(t, 1, manifests(t, wd.js), "cmd-1's manifest is gone with its entries")
	assert.Equal(t, []string{"cmd-2"}, lookupIDs(t, wd.js, "acme"))

	// Discarded: the index is empty.
	snap, err := failstore.Load(ctx, wd.js, failstore.Select{})
	require.NoError(t, err)
	n, err := failstore.Discard(ctx, wd.js, snap.Failures)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Empty(t, allIndexSubjects(t, wd.js), "a discarded failure leaves no index entry, nor its manifest")
}

// An index entry whose command's open failure does not hold the value (a
// crash between the writer's steps) is read and not answered; the
// command's next write removes it.
func TestLookupVerifiesHits(t *testing.T) {
	wd := newWorld(t)
	ctx := context.Background()
	require.NoError(t, wd.w.Open(ctx, failureEntry(t, "cmd-1", "", contact.ReasonInvalid, `{"name":"Ada","email":"ada@example.com"}`), nil))
	// A stale entry: the value "bob@example.com" pointing at cmd-1, and
	// one pointing at a command with no open failure at all.
	for _, key := range []string{record.Key("cmd-1"), record.Key("cmd-gone")} {
		subject := strings.Replace(indexSubjectOf(t, wd.js, "ada@example.com"), record.Key("cmd-1"), key, 1)
		subject = strings.Replace(subject, digestOf("ada@example.com"), digestOf("bob@example.com"), 1)
		m := nats.NewMsg(subject)
		m.Header.Set(failstore.HeaderFailureSeq, "1")
		_, err := wd.js.PublishMsg(ctx, m)
		require.NoError(t, err)
	}
	found, err := failstore.Lookup(ctx, wd.js, "bob@example.com", failstore.Select{}, 0)
	require.NoError(t, err)
	assert.Empty(t, found.Failures, "a stale entry is not answered")
	assert.Equal(t, 2, found.Hits)
	assert.Equal(t, 2, found.Stale)
	// A selection the failure does not meet is no answer either.
	found, err = failstore.Lookup(ctx, wd.js, "ada@example.com", failstore.Select{Reasons: []contact.Reason{contact.ReasonExhausted}}, 0)
	require.NoError(t, err)
	assert.Empty(t, found.Failures)
}

// A write that dies half-way (its failure indexed, the older failure's
// entries and the older failure still there) is repaired by its
// redelivery, which writes the same failure again.
func TestIndexRepairedByRedelivery(t *testing.T) {
	wd := newWorld(t)
	ctx := context.Background()
	require.NoError(t, wd.w.Open(ctx, failureEntry(t, "cmd-1", "", contact.ReasonInvalid, `{"name":"Ada","email":"old@example.com"}`), nil))
	second := failureEntry(t, "cmd-1", "gen-2", contact.ReasonInvalid, `{"name":"Ada","email":"new@example.com"}`)
	dying, die := context.WithCancel(ctx)
	steps := 0
	failstore.SetPause(wd.w, func() {
		if steps++; steps == 3 { // stored, checked, indexed: the process dies
			die()
		}
	})
	require.Error(t, wd.w.Open(dying, second, nil))
	assert.Len(t, indexSubjects(t, wd.js), 3, "both emails indexed")
	assert.Empty(t, lookupIDs(t, wd.js, "old@example.com"), "the command's newest entry answers: the older email is stale")
	failstore.SetPause(wd.w, nil)
	// The redelivery writes the same failure again.
	second = failureEntry(t, "cmd-1", "gen-2", contact.ReasonInvalid, `{"name":"Ada","email":"new@example.com"}`)
	require.NoError(t, wd.w.Open(ctx, second, nil))
	assert.Len(t, indexSubjects(t, wd.js), 2, "name and the new email only")
	found, err := failstore.Lookup(ctx, wd.js, "old@example.com", failstore.Select{}, 0)
	require.NoError(t, err)
	assert.Zero(t, found.Hits, "the older failure's value is gone from the index")
	assert.Equal(t, []string{"cmd-1"}, lookupIDs(t, wd.js, "NEW@example.com"))
}

// digestOf is the digest token of a folded value, as the index names it.
func digestOf(form string) string {
	return strings.Split(strings.TrimPrefix(failstore.IndexSubject(form, "x.y"), failstore.IndexSubjectPrefix), ".")[0]
}

// indexSubjectOf returns the one index subject of a form.
func indexSubjectOf(t *testing.T, js jetstream.JetStream, form string) string {
	t.Helper()
	d := digestOf(form)
	for _, s := range indexSubjects(t, js) {
		if strings.HasPrefix(s, failstore.IndexSubjectPrefix+d+".") {
			return s
		}
	}
	t.Fatalf("no index entry for %q", form)
	return ""
}

// A value of 5,000 characters and values with control characters are
// indexed under subjects of bounded length, and found.
func TestIndexBoundsSubjects(t *testing.T) {
	wd := newWorld(t)
	ctx := context.Background()
	long := strings.Repeat("Ω", 2500) + strings.Repeat("x", 2500)
	control := "line one\r\nline two\x00.*>"
	cmd, err := json.Marshal(map[string]any{"name": control, "metadata": map[string]string{"note": long, "a.b": "x.y >"}})
	require.NoError(t, err)
	require.NoError(t, wd.w.Open(ctx, failureEntry(t, "cmd.with spaces>*", "", contact.ReasonInvalid, string(cmd)), nil))
	subjects := indexSubjects(t, wd.js)
	require.Len(t, subjects, 3)
	for _, s := range subjects {
		assert.Less(t, len(s), 128, "a bounded subject: %s", s)
		assert.Equal(t, 4, strings.Count(s, "."), "prefix (two tokens), digest and the key (two tokens): %s", s)
	}
	assert.Equal(t, []string{"cmd.with spaces>*"}, lookupIDs(t, wd.js, long))
	assert.Equal(t, []string{"cmd.with spaces>*"}, lookupIDs(t, wd.js, "LINE ONE LINE TWO\x00.*>"), "white space folded, control characters kept")
	assert.Equal(t, []string{"cmd.with spaces>*"}, lookupIDs(t, wd.js, "x.y >"))
}

// At most MaxIndexedMetadata metadata values are indexed: those of the
// first keys by name.
func TestIndexBoundsWrites(t *testing.T) {
	wd := newWorld(t)
	ctx := context.Background()
	meta := map[string]string{}
	for i := range 20 {
		meta[fmt.Sprintf("k%02d", i)] = fmt.Sprintf("value %d", i)
	}
	cmd, err := json.Marshal(map[string]any{"name": "N", "email": "e@x.io", "mobile": "+15550001111", "companyName": "C", "metadata": meta})
	require.NoError(t, err)
	require.NoError(t, wd.w.Open(ctx, failureEntry(t, "cmd-1", "", contact.ReasonInvalid, string(cmd)), nil))
	assert.Equal(t, 4+failstore.MaxIndexedMetadata, indexCount(t, wd.js))
	assert.Equal(t, []string{"cmd-1"}, lookupIDs(t, wd.js, "value 7"))
	assert.Empty(t, lookupIDs(t, wd.js, "value 8"), "the ninth key's value is not indexed")
}

// A store that existed before the index (an upgrade) is indexed once by
// the migration, which then leaves the index alone.
func TestIndexMigration(t *testing.T) {
	srv := natstest.Start(t, nil)
	_, js := srv.Connect(t)
	ctx := context.Background()
	// The store as a release before the index left it.
	_, err := js.CreateStream(ctx, failstore.StreamConfig(1))
	require.NoError(t, err)
	w, err := failstore.OpenWriter(ctx, js)
	require.NoError(t, err)
	for i := range 30 {
		cmd := fmt.Sprintf(`{"name":"Customer %d","email":"c%d@example.com","metadata":{"crmId":"CRM-%d"}}`, i, i, i)
		require.NoError(t, w.Open(ctx, failureEntry(t, fmt.Sprintf("cmd-%02d", i), "", contact.ReasonExhausted, cmd), nil))
	}
	require.NoError(t, provision.Setup(ctx, js, provision.Topology{}))
	_, err = failstore.Lookup(ctx, js, "c7@example.com", failstore.Select{}, 0)
	require.ErrorIs(t, err, failstore.ErrNoIndex, "an index not built yet does not answer")

	var told []uint64
	st, ran, err := provision.IndexFailures(ctx, js, func(done, total uint64) { told = append(told, done) })
	require.NoError(t, err)
	assert.True(t, ran)
	assert.Equal(t, 30, st.Failures)
	assert.Equal(t, 120, st.Writes, "three values and a manifest per failure")
	assert.NotEmpty(t, told, "progress is told")
	assert.Equal(t, []string{"cmd-07"}, lookupIDs(t, js, "C7@example.com"))
	assert.Equal(t, []string{"cmd-29"}, lookupIDs(t, js, "crm-29"))

	// Idempotent: run again, it does nothing; setup leaves it built.
	_, ran, err = provision.IndexFailures(ctx, js, nil)
	require.NoError(t, err)
	assert.False(t, ran)
	require.NoError(t, provision.Setup(ctx, js, provision.Topology{}))
	assert.Equal(t, 90, indexCount(t, js))
	assert.Equal(t, 30, manifests(t, js))
}

// The index is derived: a writer whose index stream was deleted while it
// runs keeps the store (lookups then say the index is not built), and
// setup builds it again.
func TestWriterOutlivesItsIndex(t *testing.T) {
	wd := newWorld(t)
	ctx := context.Background()
	require.NoError(t, wd.w.Open(ctx, failureEntry(t, "cmd-1", "", contact.ReasonInvalid, `{"name":"Ada"}`), nil))
	require.NoError(t, wd.js.DeleteStream(ctx, failstore.IndexStream))
	require.NoError(t, wd.w.Open(ctx, failureEntry(t, "cmd-2", "", contact.ReasonInvalid, `{"name":"Bo"}`), nil), "opened without the index")
	require.NoError(t, wd.w.Resolve(ctx, "cmd-1", nil), "resolved without the index")
	snap, err := failstore.Load(ctx, wd.js, failstore.Select{})
	require.NoError(t, err)
	require.Len(t, snap.Failures, 1)
	_, err = failstore.Lookup(ctx, wd.js, "bo", failstore.Select{}, 0)
	require.ErrorIs(t, err, failstore.ErrNoIndex)

	require.NoError(t, provision.Setup(ctx, wd.js, provision.Topology{}))
	_, ran, err := provision.IndexFailures(ctx, wd.js, nil)
	require.NoError(t, err)
	assert.True(t, ran)
	assert.Equal(t, []string{"cmd-2"}, lookupIDs(t, wd.js, "BO"))
	n, err := failstore.Discard(ctx, wd.js, snap.Failures)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Empty(t, allIndexSubjects(t, wd.js))
}
