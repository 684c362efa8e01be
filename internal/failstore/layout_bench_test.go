package failstore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/natstest"
	"github.com/contactrelay/contactrelay/record"
)

// BenchmarkIndexLayout measures, on a stream of INDEX_LAYOUT_KEYS keys
// (default 200,000) with five index entries each, what removing one key's
// entries costs: a purge filtered by a wildcard in the middle of the
// subject, against exact purges of digests known from the closed entry's
// body; and what finding a key's entries (wildcard) and a digest's
// entries (literal prefix) costs.
func BenchmarkIndexLayout(b *testing.B) {
	n := 200000
	if v := os.Getenv("INDEX_LAYOUT_KEYS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	srv := natstest.Start(b, nil)
	nc, js := srv.Connect(b)
	ctx := context.Background()
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "LAYOUT", Subjects: []string{"layout.>"}, Storage: jetstream.FileStorage, MaxMsgsPerSubject: 1, AllowDirect: true})
	require.NoError(b, err)
	digest := func(s string) string { sum := sha256.Sum256([]byte(s)); return hex.EncodeToString(sum[:16]) }
	subj := func(i, f int) string {
		return "layout." + digest(fmt.Sprintf("v%d-%d", i, f)) + "." + record.Key(fmt.Sprintf("cmd-%07d", i))
	}
	start := time.Now()
	for i := range n {
		for f := range 5 {
			m := nats.NewMsg(subj(i, f))
			m.Header.Set("Contact-Failure-Seq", strconv.Itoa(i))
			if _, err := js.PublishMsgAsync(m); err != nil {
				b.Fatal(err)
			}
		}
		if i%2000 == 0 {
			<-js.PublishAsyncComplete()
		}
	}
	<-js.PublishAsyncComplete()
	s, _ := js.Stream(ctx, "LAYOUT")
	info, _ := s.Info(ctx)
	b.Logf("filled %d entries (%d bytes) in %s", info.State.Msgs, info.State.Bytes, time.Since(start))
	get := func(filter string) {
		req, _ := json.Marshal(map[string]any{"seq": 1, "next_by_subj": filter})
		_, err := nc.Request("$JS.API.DIRECT.GET.LAYOUT", req, 10*time.Second)
		require.NoError(b, err)
	}
	i := 0
	b.Run("purge-wildcard-middle", func(b *testing.B) {
		for b.Loop() {
			i++
			require.NoError(b, s.Purge(ctx, jetstream.WithPurgeSubject("layout.*."+record.Key(fmt.Sprintf("cmd-%07d", i)))))
		}
	})
	b.Run("purge-5-exact", func(b *testing.B) {
		for b.Loop() {
			i++
			for f := range 5 {
				require.NoError(b, s.Purge(ctx, jetstream.WithPurgeSubject(subj(i, f))))
			}
		}
	})
	b.Run("get-next-wildcard-middle", func(b *testing.B) {
		for b.Loop() {
			i++
			get("layout.*." + record.Key(fmt.Sprintf("cmd-%07d", i)))
		}
	})
	b.Run("get-next-digest-prefix", func(b *testing.B) {
		for b.Loop() {
			i++
			get("layout." + digest(fmt.Sprintf("v%d-%d", i, 2)) + ".>")
		}
	})
	b.Run("get-last-exact", func(b *testing.B) {
		for b.Loop() {
			i++
			_, err := s.GetLastMsgForSubject(ctx, subj(i, 3))
			require.NoError(b, err)
		}
	})
}
