package schemas

import (
	"encoding/json"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/provision"
)

const schemaFormat = "application/schema+json;version=draft-2020-12"

// asyncAPI reads the embedded AsyncAPI document as generic YAML values.
func asyncAPI(t testing.TB) map[string]any {
	t.Helper()
	b, err := fs.ReadFile(FS(), AsyncAPI)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(b, &doc), "the AsyncAPI document is YAML")
	return doc
}

// at follows a JSON pointer ("/a/b/0") through YAML or JSON values.
func at(v any, pointer string) (any, bool) {
	if pointer == "" {
		return v, true
	}
	for _, tok := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch n := v.(type) {
		case map[string]any:
			next, ok := n[tok]
			if !ok {
				return nil, false
			}
			v = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(n) {
				return nil, false
			}
			v = n[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// get follows a pointer that must exist, returning its value as T.
func get[T any](t testing.TB, v any, pointer string) T {
	t.Helper()
	got, ok := at(v, pointer)
	require.True(t, ok, "%s exists", pointer)
	typed, ok := got.(T)
	require.True(t, ok, "%s is a %T, not %T", pointer, *new(T), got)
	return typed
}

// refs returns every $ref value in v, with the pointer where it was found.
func refs(v any, where string, out map[string]string) {
	switch n := v.(type) {
	case map[string]any:
		for k, child := range n {
			if k == "$ref" {
				if s, ok := child.(string); ok {
					out[where] = s
				}
				continue
			}
			refs(child, where+"/"+k, out)
		}
	case []any:
		for i, child := range n {
			refs(child, where+"/"+strconv.Itoa(i), out)
		}
	}
}

// deref resolves a local reference ("#/components/...") of the document.
func deref(t testing.TB, doc any, ref string) any {
	t.Helper()
	require.True(t, strings.HasPrefix(ref, "#/"), "%s is a local reference", ref)
	v, ok := at(doc, strings.TrimPrefix(ref, "#"))
	require.True(t, ok, "%s resolves", ref)
	return v
}

func TestAsyncAPI(t *testing.T) {
	doc := asyncAPI(t)
	s := compiled(t)

	t.Run("version", func(t *testing.T) {
		assert.Equal(t, "3.0.0", doc["asyncapi"], "an AsyncAPI 3.0 document")
		assert.NotEmpty(t, get[string](t, doc, "/info/title"))
		assert.NotEmpty(t, get[string](t, doc, "/info/version"))
	})

	t.Run("every reference resolves", func(t *testing.T) {
		all := map[string]string{}
		refs(doc, "", all)
		require.NotEmpty(t, all)
		files := 0
		for where, ref := range all {
			file, fragment, _ := strings.Cut(ref, "#")
			if file == "" {
				_, ok := at(doc, fragment)
				assert.True(t, ok, "the $ref %q at %s resolves in the document", ref, where)
				continue
			}
			files++
			b, err := fs.ReadFile(FS(), path.Clean(file))
			if !assert.NoError(t, err, "the $ref %q at %s names a file next to the document", ref, where) {
				continue
			}
			var target any
			require.NoError(t, json.Unmarshal(b, &target), "%s is JSON", file)
			_, ok := at(target, fragment)
			assert.True(t, ok, "the $ref %q at %s resolves in %s", ref, where, file)
		}
		assert.Equal(t, len(Names()), files, "each message schema is referenced once, from its message")
	})

	channels := get[map[string]any](t, doc, "/channels")
	byAddress := map[string]string{} // address -> channel key
	for key := range channels {
		byAddress[get[string](t, channels, "/"+key+"/address")] = key
	}

	t.Run("channels", func(t *testing.T) {
		addresses := make([]string, 0, len(byAddress))
		for a := range byAddress {
			addresses = append(addresses, a)
		}
		sort.Strings(addresses)
		assert.Equal(t, []string{contact.SubjectCreate, contact.SubjectCreated, contact.SubjectFailed}, addresses,
			"one channel per subject of the contract, at its exact subject")
		assert.Equal(t, []string{Command, Created, Failed}, addresses, "the subjects are the schema names")
	})

	t.Run("operations", func(t *testing.T) {
		want := map[string]string{contact.SubjectCreate: "receive", contact.SubjectCreated: "send", contact.SubjectFailed: "send"}
		got := map[string]string{}
		for key, op := range get[map[string]any](t, doc, "/operations") {
			ch := deref(t, doc, get[string](t, op, "/channel/$ref"))
			address := get[string](t, ch, "/address")
			got[address] = get[string](t, op, "/action")
			msgs := get[[]any](t, op, "/messages")
			require.Len(t, msgs, 1, "operation %s has one message", key)
			msgRef := get[string](t, msgs[0], "/$ref")
			assert.True(t, strings.HasPrefix(msgRef, "#/channels/"+byAddress[address]+"/messages/"),
				"operation %s refers to a message of its own channel, not %s", key, msgRef)
		}
		assert.Equal(t, want, got, "the service receives commands and sends both events")
	})

	t.Run("messages", func(t *testing.T) {
		wantHeaders := map[string][]string{
			contact.SubjectCreate:  {contact.HeaderMsgID, "traceparent", "tracestate", contact.HeaderReplayOf},
			contact.SubjectCreated: {contact.HeaderMsgID, "traceparent", "tracestate"},
			contact.SubjectFailed:  {contact.HeaderMsgID, "traceparent", "tracestate"},
		}
		for address, key := range byAddress {
			t.Run(address, func(t *testing.T) {
				msgs := get[map[string]any](t, channels, "/"+key+"/messages")
				require.Len(t, msgs, 1, "one message on %s", address)
				for _, m := range msgs {
					msg := deref(t, doc, get[string](t, m, "/$ref"))
					assert.Equal(t, "application/json", get[string](t, msg, "/contentType"))
					assert.Equal(t, schemaFormat, get[string](t, msg, "/payload/schemaFormat"), "payloads are JSON Schema 2020-12")
					assert.Equal(t, address+".schema.json", get[string](t, msg, "/payload/schema/$ref"), "the payload is the subject's schema file")

					headers := deref(t, doc, get[string](t, msg, "/headers/$ref"))
					props := get[map[string]any](t, headers, "/properties")
					for _, h := range wantHeaders[address] {
						assert.Contains(t, props, h, "message on %s declares the header %s", address, h)
					}

					examples := get[[]any](t, msg, "/examples")
					require.NotEmpty(t, examples, "message on %s has an example", address)
					for i, ex := range examples {
						payload, err := json.Marshal(get[map[string]any](t, ex, "/payload"))
						require.NoError(t, err)
						assert.NoError(t, s.Validate(address, payload), "example %d of %s validates", i, address)
						if address != contact.SubjectCreate {
							assert.Equal(t, get[string](t, ex, "/payload/id"), get[string](t, ex, "/headers/"+contact.HeaderMsgID),
								"an event's Nats-Msg-Id is its id")
						}
					}
				}
			})
		}
	})

	t.Run("jetstream", func(t *testing.T) {
		js := get[map[string]any](t, doc, "/servers/nats/x-jetstream")
		streams := get[map[string]any](t, js, "/streams")
		wantStreams := map[string][]string{
			provision.CommandStream: {contact.SubjectCreate},
			provision.EventStream:   {contact.SubjectCreated, contact.SubjectFailed},
		}
		require.Len(t, streams, len(wantStreams))
		for name, subjects := range wantStreams {
			st := get[map[string]any](t, streams, "/"+name)
			assert.ElementsMatch(t, subjects, get[[]any](t, st, "/subjects"), "stream %s subjects", name)
			assert.Equal(t, "file", st["storage"], "stream %s storage", name)
			assert.Equal(t, "limits", st["retention"], "stream %s retention", name)
			assert.Equal(t, provision.DuplicateWindow, duration(t, st["duplicateWindow"]), "stream %s duplicate window", name)
		}
		for address, key := range byAddress {
			name := get[string](t, channels, "/"+key+"/x-jetstream-stream")
			assert.Contains(t, wantStreams[name], address, "channel %s is stored in stream %s", address, name)
		}

		cc := provision.Topology{}.ConsumerConfig()
		consumer := get[map[string]any](t, js, "/consumers/"+provision.Durable)
		assert.Equal(t, provision.CommandStream, consumer["stream"])
		assert.Equal(t, true, consumer["durable"])
		assert.Equal(t, "pull", consumer["type"])
		assert.Equal(t, cc.FilterSubject, consumer["filterSubject"])
		for key, policy := range map[string]any{"ackPolicy": cc.AckPolicy, "deliverPolicy": cc.DeliverPolicy, "replayPolicy": cc.ReplayPolicy} {
			want, err := json.Marshal(policy)
			require.NoError(t, err)
			assert.Equal(t, string(want), strconv.Quote(get[string](t, consumer, "/"+key)), "the consumer's %s is the one setup creates", key)
		}
		assert.Equal(t, cc.AckWait, duration(t, consumer["ackWait"]))
		assert.Equal(t, cc.MaxAckPending, consumer["maxAckPending"])
		assert.Equal(t, cc.MaxDeliver, consumer["maxDeliver"], "no delivery limit on the durable: the service counts MAX_DELIVER")

		var receive map[string]any
		for _, op := range get[map[string]any](t, doc, "/operations") {
			if get[string](t, op, "/action") == "receive" {
				receive = op.(map[string]any)
			}
		}
		require.NotNil(t, receive, "a receive operation")
		assert.Equal(t, provision.Durable, receive["x-jetstream-consumer"], "commands are received through the durable")

		bucket := get[map[string]any](t, js, "/keyValue/"+provision.RecordBucket)
		assert.Equal(t, "file", bucket["storage"])
		assert.NotEmpty(t, bucket["description"], "the bucket says what it holds")
	})
}

func duration(t testing.TB, v any) time.Duration {
	t.Helper()
	s, ok := v.(string)
	require.True(t, ok, "a duration is written as a string, not %T", v)
	d, err := time.ParseDuration(s)
	require.NoError(t, err)
	return d
}
