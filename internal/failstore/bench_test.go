package failstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/natstest"
)

// BenchmarkGet reads 2,000 open failures whole through a link with a
// 1 ms round trip (a proxy that delays each direction by 0.5 ms), one
// read at a time as Get did before, and with Get's reads in flight:
//
//	go test -run '^$' -bench BenchmarkGet -benchtime 3x ./internal/failstore
func BenchmarkGet(b *testing.B) {
	srv := natstest.Start(b, nil)
	_, js := srv.Connect(b)
	ctx := context.Background()
	_, err := js.CreateOrUpdateStream(ctx, failstore.StreamConfig(1))
	require.NoError(b, err)
	const n = 2000
	for i := range n {
		f := contact.Failed{CommandID: fmt.Sprintf("b-%05d", i), Provider: "instantpay", Reason: contact.ReasonExhausted,
			Message: "InstantPay kept failing: 503", Command: json.RawMessage(`{"name":"A","email":"a@example.com","mobile":"9876543210","tagId":"t"}`)}
		ev, err := events.NewEvent("", contact.SubjectFailed, f.CommandID, "", time.Now(), f)
		require.NoError(b, err)
		body, err := json.Marshal(ev)
		require.NoError(b, err)
		e, err := failstore.NewEntry(&ev, body, false)
		require.NoError(b, err)
		_, err = js.PublishMsgAsync(e.Msg)
		require.NoError(b, err)
	}
	<-js.PublishAsyncComplete()

	slow := slowLink(b, srv.Addr().String(), 500*time.Microsecond)
	nc, err := nats.Connect("nats://" + slow)
	require.NoError(b, err)
	b.Cleanup(nc.Close)
	sjs, err := jetstream.New(nc)
	require.NoError(b, err)
	snap, err := failstore.Load(ctx, sjs, failstore.Select{})
	require.NoError(b, err)
	require.Len(b, snap.Failures, n)

	for _, inFlight := range []int{1, 16} {
		b.Run(fmt.Sprintf("in-flight=%d", inFlight), func(b *testing.B) {
			defer failstore.SetGetInFlight(inFlight)()
			for b.Loop() {
				got, err := failstore.Get(ctx, sjs, snap.Failures)
				require.NoError(b, err)
				require.Len(b, got, n)
			}
		})
	}
}

// slowLink forwards connections to addr through a local port, delaying
// every chunk by delay in each direction (without holding up the chunks
// behind it), and returns the port's address.
func slowLink(tb testing.TB, addr string, delay time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = ln.Close() })
	pipe := func(dst, src net.Conn) {
		type chunk struct {
			b  []byte
			at time.Time
		}
		ch := make(chan chunk, 1024)
		go func() {
			defer close(ch)
			for {
				buf := make([]byte, 32<<10)
				n, err := src.Read(buf)
				if n > 0 {
					ch <- chunk{buf[:n], time.Now().Add(delay)}
				}
				if err != nil {
					return
				}
			}
		}()
		for c := range ch {
			time.Sleep(time.Until(c.at))
			if _, err := dst.Write(c.b); err != nil {
				break
			}
		}
		_ = dst.Close()
		_, _ = io.Copy(io.Discard, src)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", addr)
			if err != nil {
				_ = c.Close()
				continue
			}
			go pipe(s, c)
			go pipe(c, s)
		}
	}()
	return ln.Addr().String()
}
