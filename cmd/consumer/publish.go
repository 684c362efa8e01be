package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/contactrelay/contactrelay/client"
	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/config"
	"github.com/contactrelay/contactrelay/internal/exit"
	"github.com/contactrelay/contactrelay/internal/natsconn"
	"github.com/contactrelay/contactrelay/internal/replay"
)

// errNoStreams says the JetStream resources are missing (exit 2).
var errNoStreams = client.ErrNoStreams

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

	nc, js, err := natsconn.ConnectCommands(ctx, cfg)
	if err != nil {
		return err
	}
	defer nc.Close()
	c := client.New(js, client.Config{DefaultProvider: cfg.DefaultProvider, Published: func(ack client.Ack) { sayPublished(stderr, ack) }})
	if !opts.wait {
		_, err := publishMessage(ctx, c, body, stderr)
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, opts.timeout)
	defer cancel()
	o, err := c.PublishMessageAndWait(wctx, client.Message{Body: body})
	if errors.Is(err, client.ErrOtherContent) {
		sayPublished(stderr, o.Ack) // Published is told of stored commands only
	}
	return showOutcome(ctx, body, o, err, opts.timeout, stdout)
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
func parsePublishFlags(args []string, getenv func(string) string, stderr io.Writer) (publishOptions, config.Config, error) {
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
	load := toolFlags(fs, getenv, "DEFAULT_PROVIDER")
	if err := parseFlags(fs, args); err != nil {
		return o, config.Config{}, err
	}
	o.given = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.given[f.Name] = true })
	var usage []error
	if fs.NArg() > 0 {
		usage = append(usage, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
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
		return o, cfg, usageErr(fs, errors.Join(usage...))
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
			return nil, &exit.Error{Code: 2, Err: fmt.Errorf("--file: %w", err)}
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
			return nil, &exit.Error{Code: 2, Err: fmt.Errorf("nothing was published (--no-validate sends it anyway): %s", broken)}
		}
		fmt.Fprintf(stderr, "warning: sending it anyway (--no-validate), for the service to answer with contact.failed: %s\n", broken)
	}
	return body, nil
}

// publishMessage publishes body as a command through c and says so on
// stderr: exit 2 when the streams are missing or the publish failed, 1
// when the stream dropped it as a duplicate of other content.
func publishMessage(ctx context.Context, c *client.Client, body []byte, stderr io.Writer) (client.Ack, error) {
	ack, err := c.PublishMessage(ctx, client.Message{Body: body})
	if ack.Stream != "" {
		sayPublished(stderr, ack)
	}
	return ack, publishError(err)
}

// publishError gives a publish's error its exit code.
func publishError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, client.ErrOtherContent):
		return &exit.Error{Code: 1, Err: err}
	}
	return &exit.Error{Code: 2, Err: err}
}

func sayPublished(stderr io.Writer, ack client.Ack) {
	note := ""
	if ack.Duplicate {
		note = " (a duplicate within the stream's window: not stored again)"
	}
	fmt.Fprintf(stderr, "published %s commandId=%s stream=%s seq=%d%s\n", contact.SubjectCreate, ack.CommandID, ack.Stream, ack.Sequence, note)
}

// showOutcome prints the terminal event a wait got, and says what the
// wait's error means: exit 1 when the outcome is contact.failed, 2 when
// none came within timeout (or the publish of body was not acknowledged
// within it), 130 when interrupted.
func showOutcome(ctx context.Context, body []byte, o client.Outcome, err error, timeout time.Duration, stdout io.Writer) error {
	var failed *client.FailedError
	id := o.Ack.CommandID
	switch {
	case err == nil, errors.As(err, &failed):
	case o.Ack.Stream == "" && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
		again := "publishing it again with the same commandId is safe"
		var c struct {
			CommandID string `json:"commandId"`
		}
		if json.Unmarshal(body, &c) == nil && c.CommandID != "" {
			again = "publishing it again is safe with --command-id " + replay.ShellQuote(c.CommandID)
		}
		return &exit.Error{Code: 2, Err: fmt.Errorf("JetStream did not acknowledge the publish within --timeout %s: the command may or may not be stored; %s", timeout, again)}
	case o.Ack.Stream == "": // not published
		return publishError(err)
	case ctx.Err() != nil:
		return &exit.Error{Code: exit.Interrupted, Err: fmt.Errorf("interrupted while waiting for the outcome of %s: the command was published ('consumer failures --command-id %s' shows a failure later)", id, id)}
	case errors.Is(err, client.ErrTimeout):
		return &exit.Error{Code: 2, Err: fmt.Errorf("no outcome for %s within %s (is the service running?)", id, timeout)}
	default:
		return publishError(err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, o.Raw, "", "  "); err != nil {
		out.Write(o.Raw)
	}
	fmt.Fprintln(stdout, out.String())
	if failed != nil {
		return &exit.Error{Code: 1, Err: exit.ErrQuiet}
	}
	return nil
}

func readInput(path string, stdin io.Reader) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(io.LimitReader(stdin, 16<<20))
	}
	return os.ReadFile(path)
}

// checkCommand applies the service's rules to a command body (see
// client.Client.ValidateJSON): decoding, the contract's field rules and,
// when the command names a provider or defaultProvider is set, that
// provider's own. It returns what the service would answer with
// contact.failed, or "" when the command passes.
func checkCommand(body []byte, defaultProvider string) string {
	err := client.New(nil, client.Config{DefaultProvider: defaultProvider}).ValidateJSON(body)
	if err == nil {
		return ""
	}
	return err.Error()
}
