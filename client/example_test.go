package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/client"
)

func Example() {
	natsURL, stop := startExample() // an embedded NATS server and the service, for the example
	defer stop()

	nc, err := nats.Connect(natsURL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Println(err)
		return
	}
	c := client.New(js, client.Config{DefaultProvider: "instantpay"})

	cmd := client.Command{
		CommandID: "crm-000123", // the idempotency key: re-publishing it creates nothing twice
		Name:      "Jane Doe",
		Email:     "jane@example.com",
		Mobile:    "+919876543210",
		TagID:     "65a1b2c3d4e5f6a7b8c9d0e1",
		Metadata:  map[string]string{"crmId": "000123"},
	}
	if err := c.Validate(cmd); err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o, err := c.PublishAndWait(ctx, cmd)
	var failed *client.FailedError
	switch {
	case errors.As(err, &failed):
		fmt.Println("failed:", failed.Reason, failed.Message)
	case errors.Is(err, client.ErrTimeout):
		fmt.Println("no outcome yet; it will come as an event")
	case err != nil:
		fmt.Println(err)
	default:
		fmt.Println(o.Event.Type, "at", o.Created.Provider, "for", o.Created.CommandID, "crmId", o.Created.Metadata["crmId"])
	}
	// Output: contact.created at instantpay for crm-000123 crmId 000123
}

func ExampleClient_Validate() {
	c := client.New(nil, client.Config{DefaultProvider: "instantpay"}) // validation needs no connection
	err := c.Validate(client.Command{Name: "Jane Doe", Email: "jane@", Mobile: "12", TagID: "vip"})
	var invalid *client.InvalidError
	if errors.As(err, &invalid) {
		for _, fe := range invalid.Errors {
			fmt.Printf("%s (%s): %s\n", fe.Field, fe.Rule, fe.Message)
		}
	}
	// Output:
	// email (email): email must be a valid email address
	// mobile (mobile): mobile must be 10 to 15 digits, with an optional leading +
	// tagId (hexadecimal24): tagId must be a 24-character hexadecimal id for InstantPay
}

func ExampleFailedError() {
	natsURL, stop := startExample()
	defer stop()
	nc, _ := nats.Connect(natsURL)
	defer nc.Close()
	js, _ := jetstream.New(nc)
	c := client.New(js, client.Config{})

	// Sent without validating, the service answers with contact.failed.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.PublishAndWait(ctx, client.Command{CommandID: "crm-bad", Name: "Jane Doe", Email: "not-an-email", Mobile: "+919876543210", TagID: "65a1b2c3d4e5f6a7b8c9d0e1"})
	var failed *client.FailedError
	if errors.As(err, &failed) {
		fmt.Println(failed.Reason, failed.Retryable)
		for _, fe := range failed.Errors {
			fmt.Println(fe.Field, fe.Rule)
		}
	}
	// Output:
	// invalid false
	// email email
}

func ExampleEventID() {
	// The outcome of an original command (generation "") has a known id:
	// subscribers deduplicate by it.
	fmt.Println(client.EventID("crm-000123", "", client.SubjectCreated))
	// Output: 8796f3a5-04bd-58fc-aaef-4907e4a955d5
}

// startExample starts what an example needs (an embedded JetStream server
// with the streams, an InstantPay sandbox and the service) and returns the
// server's URL and how to stop it all.
func startExample() (natsURL string, stop func()) {
	tb := &exampleTB{}
	w := newWorld(tb)
	w.startService(tb)
	return w.js.Conn().ConnectedUrl(), tb.cleanup
}

// exampleTB is the little of testing.TB the test helpers use, for
// examples, which have none: a failure ends the process.
type exampleTB struct {
	testing.TB
	cleanups []func()
	dirs     []string
}

func (*exampleTB) Helper() {}

func (e *exampleTB) Cleanup(f func()) { e.cleanups = append(e.cleanups, f) }

func (e *exampleTB) TempDir() string {
	d, err := os.MkdirTemp("", "client-example")
	if err != nil {
		e.Fatal(err)
	}
	e.dirs = append(e.dirs, d)
	return d
}

func (e *exampleTB) Errorf(format string, args ...any) { e.Fatalf(format, args...) }

func (e *exampleTB) Fatal(args ...any) { e.Fatalf("%s", fmt.Sprint(args...)) }

func (e *exampleTB) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "example: "+format+"\n", args...)
	os.Exit(1)
}

func (e *exampleTB) cleanup() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
	for _, d := range e.dirs {
		_ = os.RemoveAll(d)
	}
}
