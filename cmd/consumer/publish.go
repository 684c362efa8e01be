package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/stream"
)

// errNoStreams says the JetStream resources are missing.
var errNoStreams = errors.New("the streams do not exist: start the service ('consumer run' or 'consumer dev') or run 'consumer setup'")

// publishCommand is 'consumer publish': publish one command and, with
// --wait, print its terminal event.
func publishCommand(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("consumer publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		file      = fs.String("file", "", "publish this file's bytes as the command (- for stdin), as they are")
		provider  = fs.String("provider", "", "provider: instantpay or pik")
		name      = fs.String("name", "", "contact name")
		email     = fs.String("email", "", "contact email")
		mobile    = fs.String("mobile", "", "contact mobile, 10 to 15 digits")
		tagID     = fs.String("tag-id", "", "tag id (InstantPay: 24 hex characters)")
		company   = fs.String("company", "", "company name")
		commandID = fs.String("command-id", "", "idempotency key (default: a new UUID, with the field flags)")
		wait      = fs.Bool("wait", false, "wait for the command's terminal event and print it")
		timeout   = fs.Duration("timeout", 30*time.Second, "how long --wait waits")
	)
	load := configFlags(fs, getenv)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := load()
	if err != nil {
		return err
	}

	var body []byte
	if *file != "" {
		if body, err = readInput(*file, stdin); err != nil {
			return err
		}
	} else {
		cmd := map[string]any{"name": *name, "email": *email, "mobile": *mobile, "tagId": *tagID}
		for k, v := range map[string]string{"provider": *provider, "companyName": *company} {
			if v != "" {
				cmd[k] = v
			}
		}
		id := *commandID
		if id == "" {
			id = uuid.NewString()
		}
		cmd["commandId"] = id
		if body, err = json.Marshal(cmd); err != nil {
			return err
		}
	}

	nc, err := connectNATS(cfg, "contactrelay-publish", slog.New(slog.DiscardHandler))
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if _, err := js.Stream(ctx, stream.CommandStream); err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return &exitError{code: 2, err: errNoStreams}
		}
		return &exitError{code: 2, err: err}
	}

	var watch *eventWatch
	if *wait {
		// Subscribe before publishing, so the outcome cannot slip by.
		if watch, err = watchEvents(ctx, js, jetstream.DeliverNewPolicy); err != nil {
			return &exitError{code: 2, err: err}
		}
		defer watch.stop()
	}

	msg := nats.NewMsg(events.SubjectCreate)
	msg.Data = body
	id, hasID := bodyCommandID(body)
	if hasID {
		msg.Header.Set(events.HeaderMsgID, id)
	}
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoStreamResponse) {
			return &exitError{code: 2, err: errNoStreams}
		}
		return &exitError{code: 2, err: fmt.Errorf("publish: %w", err)}
	}
	if !hasID {
		id = fmt.Sprintf("%s:%d", ack.Stream, ack.Sequence)
	}
	note := ""
	if ack.Duplicate {
		note = " (a duplicate within the stream's window: not stored again)"
	}
	fmt.Fprintf(stderr, "published %s commandId=%s stream=%s seq=%d%s\n", events.SubjectCreate, id, ack.Stream, ack.Sequence, note)
	if !*wait {
		return nil
	}
	if ack.Duplicate {
		// Its outcome may be older than our subscription: read from the start.
		watch.stop()
		if watch, err = watchEvents(ctx, js, jetstream.DeliverAllPolicy); err != nil {
			return &exitError{code: 2, err: err}
		}
	}
	wctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	ev, raw, err := watch.await(wctx, id)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("no outcome for %s within %s: %w (is the service running?)", id, *timeout, err)}
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		out.Write(raw)
	}
	fmt.Fprintln(stdout, out.String())
	if ev.Type != events.SubjectCreated {
		return &exitError{code: 1, err: errQuiet}
	}
	return nil
}

func readInput(path string, stdin io.Reader) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(io.LimitReader(stdin, 16<<20))
	}
	return os.ReadFile(path)
}

// bodyCommandID returns the body's commandId when it is one the service
// will use (a string of 1 to 128 characters).
func bodyCommandID(body []byte) (string, bool) {
	var v struct {
		CommandID any `json:"commandId"`
	}
	if json.Unmarshal(body, &v) != nil {
		return "", false
	}
	s, ok := v.CommandID.(string)
	if !ok || s == "" || utf8.RuneCountInString(s) > 128 {
		return "", false
	}
	return s, true
}

// eventWatch reads the event stream through an ordered consumer.
type eventWatch struct {
	iter jetstream.MessagesContext
}

func watchEvents(ctx context.Context, js jetstream.JetStream, policy jetstream.DeliverPolicy) (*eventWatch, error) {
	cons, err := js.OrderedConsumer(ctx, stream.EventStream, jetstream.OrderedConsumerConfig{DeliverPolicy: policy})
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, errNoStreams
		}
		return nil, err
	}
	iter, err := cons.Messages()
	if err != nil {
		return nil, err
	}
	return &eventWatch{iter: iter}, nil
}

func (w *eventWatch) stop() { w.iter.Stop() }

// await returns the first event whose subject is commandID.
func (w *eventWatch) await(ctx context.Context, commandID string) (events.Event, []byte, error) {
	stop := context.AfterFunc(ctx, w.iter.Stop)
	defer stop()
	for {
		msg, err := w.iter.Next()
		if err != nil {
			if ctx.Err() != nil {
				return events.Event{}, nil, ctx.Err()
			}
			return events.Event{}, nil, err
		}
		var ev events.Event
		if json.Unmarshal(msg.Data(), &ev) == nil && ev.Subject == commandID {
			return ev, msg.Data(), nil
		}
	}
}
