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
	"slices"
	"strings"
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

// fieldFlags are publish's flags that write a command field; --file sends
// a command of its own instead.
var fieldFlags = []string{"provider", "name", "email", "mobile", "tag-id", "company", "command-id"}

// publishCommand is 'consumer publish': publish one command and, with
// --wait, print its terminal event. A command built from flags is checked
// with the service's rules first and refused (exit 2) if it breaks any,
// unless --no-validate; one from --file is sent as it is, with a warning
// if the service will refuse it.
func publishCommand(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	opts, cfg, err := parsePublishFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	body, err := opts.command(cfg.DefaultProvider, stdin, stderr)
	if err != nil {
		return err
	}

	nc, js, err := connectToCommands(ctx, cfg)
	if err != nil {
		return err
	}
	defer nc.Close()
	var watch *eventWatch
	if opts.wait {
		// Subscribe before publishing, so the outcome cannot slip by.
		if watch, err = watchEvents(ctx, js, jetstream.DeliverNewPolicy); err != nil {
			return &exitError{code: 2, err: err}
		}
		defer watch.stop()
	}
	id, ack, err := publishBody(ctx, js, body, stderr)
	if err != nil || !opts.wait {
		return err
	}
	if ack.Duplicate {
		// Its outcome may be older than our subscription: read from the start.
		watch.stop()
		if watch, err = watchEvents(ctx, js, jetstream.DeliverAllPolicy); err != nil {
			return &exitError{code: 2, err: err}
		}
	}
	return awaitOutcome(ctx, watch, id, opts.timeout, stdout)
}

// publishOptions are publish's flags.
type publishOptions struct {
	given map[string]bool // the flags given
	file  string

	// The command's fields.
	provider, name, email, mobile, tagID, company, commandID string

	noValidate, wait bool
	timeout          time.Duration
}

// parsePublishFlags parses publish's flags and the configuration, and
// reports every misuse at once (exit 2).
func parsePublishFlags(args []string, getenv func(string) string, stderr io.Writer) (publishOptions, Config, error) {
	fs := flag.NewFlagSet("consumer publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o publishOptions
	fs.StringVar(&o.file, "file", "", "publish this file's bytes as the command (- for stdin), as they are, valid or not")
	fs.StringVar(&o.provider, "provider", "", "provider: instantpay or pik (default: the service's DEFAULT_PROVIDER)")
	fs.StringVar(&o.name, "name", "", "contact name")
	fs.StringVar(&o.email, "email", "", "contact email")
	fs.StringVar(&o.mobile, "mobile", "", "contact mobile, 10 to 15 digits")
	fs.StringVar(&o.tagID, "tag-id", "", "tag id (InstantPay: 24 hex characters)")
	fs.StringVar(&o.company, "company", "", "company name")
	fs.StringVar(&o.commandID, "command-id", "", "idempotency key (default: a new UUID, with the field flags)")
	fs.BoolVar(&o.noValidate, "no-validate", false, "publish the command built from the flags even if it breaks the service's rules (to see it fail)")
	fs.BoolVar(&o.wait, "wait", false, "wait for the command's terminal event and print it")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "how long --wait waits")
	load := configFlags(fs, getenv)
	if err := parseFlags(fs, args); err != nil {
		return o, Config{}, err
	}
	o.given = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.given[f.Name] = true })
	var usage []error
	if fs.NArg() > 0 {
		usage = append(usage, fmt.Errorf("unexpected argument %q (see %s -h)", fs.Arg(0), fs.Name()))
	}
	if o.given["file"] {
		var with []string
		for _, f := range append(fieldFlags, "no-validate") {
			if o.given[f] {
				with = append(with, "--"+f)
			}
		}
		if len(with) > 0 {
			usage = append(usage, fmt.Errorf("--file sends the file as it is: %s cannot go with it", strings.Join(with, ", ")))
		}
		if o.file == "" {
			usage = append(usage, errors.New("--file needs a file name, or - for stdin"))
		}
	}
	if o.given["timeout"] && !o.wait {
		usage = append(usage, errors.New("--timeout is how long --wait waits: give --wait too"))
	}
	if o.timeout <= 0 {
		usage = append(usage, fmt.Errorf("--timeout must be more than 0, not %s", o.timeout))
	}
	cfg, err := load()
	if err != nil {
		usage = append(usage, err)
	}
	if len(usage) > 0 {
		return o, cfg, &exitError{code: 2, err: errors.Join(usage...)}
	}
	return o, cfg, nil
}

// command returns the command's body: the file's bytes, with a warning if
// the service will refuse them, or the command the field flags make,
// refused (exit 2) if it breaks the service's rules, unless --no-validate.
func (o publishOptions) command(defaultProvider string, stdin io.Reader, stderr io.Writer) ([]byte, error) {
	if o.given["file"] {
		body, err := readInput(o.file, stdin)
		if err != nil {
			return nil, &exitError{code: 2, err: fmt.Errorf("--file: %w", err)}
		}
		if broken := checkCommand(body, defaultProvider); broken != "" {
			fmt.Fprintf(stderr, "warning: sending the file as it is, for the service to answer with contact.failed: %s\n", broken)
		}
		return body, nil
	}
	cmd := map[string]any{"name": o.name, "email": o.email, "mobile": o.mobile, "tagId": o.tagID}
	for k, v := range map[string]string{"provider": o.provider, "companyName": o.company} {
		if v != "" {
			cmd[k] = v
		}
	}
	id := o.commandID
	if id == "" {
		id = uuid.NewString()
	}
	cmd["commandId"] = id
	body, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	if broken := checkCommand(body, defaultProvider); broken != "" {
		if !o.noValidate {
			return nil, &exitError{code: 2, err: fmt.Errorf("nothing was published (--no-validate sends it anyway): %s", broken)}
		}
		fmt.Fprintf(stderr, "warning: sending it anyway (--no-validate), for the service to answer with contact.failed: %s\n", broken)
	}
	return body, nil
}

// connectToCommands connects to NATS and checks that the command stream
// exists; either failing is exit 2. The caller closes the connection.
func connectToCommands(ctx context.Context, cfg Config) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := connectNATS(cfg, "contactrelay-publish", slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, nil, &exitError{code: 2, err: err}
	}
	js, err := newJetStream(nc, cfg)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	if _, err := js.Stream(ctx, stream.CommandStream); err != nil {
		nc.Close()
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, nil, &exitError{code: 2, err: errNoStreams}
		}
		return nil, nil, &exitError{code: 2, err: err}
	}
	return nc, js, nil
}

// publishBody publishes body as a command, with its commandId as the
// message id when it has a usable one, and says so on stderr. It returns
// the commandId, or stream:sequence when the body has none, and the ack.
func publishBody(ctx context.Context, js jetstream.JetStream, body []byte, stderr io.Writer) (string, *jetstream.PubAck, error) {
	msg := nats.NewMsg(events.SubjectCreate)
	msg.Data = body
	id, hasID := bodyCommandID(body)
	if hasID {
		msg.Header.Set(events.HeaderMsgID, id)
	}
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoStreamResponse) {
			return "", nil, &exitError{code: 2, err: errNoStreams}
		}
		return "", nil, &exitError{code: 2, err: fmt.Errorf("publish: %w", err)}
	}
	if !hasID {
		id = fmt.Sprintf("%s:%d", ack.Stream, ack.Sequence)
	}
	note := ""
	if ack.Duplicate {
		note = " (a duplicate within the stream's window: not stored again)"
	}
	fmt.Fprintf(stderr, "published %s commandId=%s stream=%s seq=%d%s\n", events.SubjectCreate, id, ack.Stream, ack.Sequence, note)
	if err := droppedConflict(ctx, js, ack, id, body); err != nil {
		return id, ack, &exitError{code: 1, err: err}
	}
	return id, ack, nil
}

// awaitOutcome waits up to timeout for the terminal event of command id
// and prints it: exit 1 when it is contact.failed, 2 when none came, 130
// when interrupted.
func awaitOutcome(ctx context.Context, watch *eventWatch, id string, timeout time.Duration, stdout io.Writer) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ev, raw, err := watch.await(wctx, id)
	switch {
	case err != nil && ctx.Err() != nil:
		return &exitError{code: exitInterrupted, err: fmt.Errorf("interrupted while waiting for the outcome of %s: the command was published ('consumer failures --command-id %s' shows a failure later)", id, id)}
	case err != nil && wctx.Err() != nil:
		return &exitError{code: 2, err: fmt.Errorf("no outcome for %s within %s (is the service running?)", id, timeout)}
	case err != nil:
		return &exitError{code: 2, err: fmt.Errorf("wait for the outcome of %s: %w", id, err)}
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

// checkCommand applies the service's rules to a command body: decoding,
// the contract's field rules and, when the command names a provider or
// defaultProvider is set, that provider's own. It returns what the service
// would answer with contact.failed, or "" when the command passes.
func checkCommand(body []byte, defaultProvider string) string {
	cmd, err := events.DecodeCommand(body)
	var derr *events.DecodeError
	if errors.As(err, &derr) && derr.Reason == events.ReasonMalformed {
		return "the command is malformed: " + derr.Message
	}
	var broken []events.FieldError
	if derr != nil {
		broken = derr.Errors
	}
	for _, fe := range events.NewValidator().Validate(cmd) {
		if !slices.ContainsFunc(broken, func(d events.FieldError) bool { return d.Field == fe.Field }) {
			broken = append(broken, fe)
		}
	}
	name := cmd.Provider
	if name == "" {
		name = defaultProvider
	}
	var names []string
	known := false
	for _, spec := range providerSpecs {
		names = append(names, spec.name)
		if spec.name == name {
			known = true
			broken = append(broken, spec.rules(cmd)...)
		}
	}
	var b strings.Builder
	switch n := len(broken); n {
	case 0:
	case 1:
		b.WriteString("the command breaks 1 rule:")
	default:
		fmt.Fprintf(&b, "the command breaks %d rules:", n)
	}
	for _, fe := range broken {
		fmt.Fprintf(&b, "\n  %s: %s", fe.Field, fe.Message)
	}
	if name != "" && !known {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "the provider %q is none of %s: the command is unroutable", name, strings.Join(names, ", "))
	}
	return b.String()
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
