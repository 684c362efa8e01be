package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/contactrelay/contactrelay/internal/config"
	"github.com/contactrelay/contactrelay/internal/importer"
	"github.com/contactrelay/contactrelay/rules"
)

// importCommand is 'consumer import FILE': publish a command for each row
// of a CSV or NDJSON file, each checked with the service's rules first,
// and with --wait write every row's outcome to --results (importer.Run).
func importCommand(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	opts, cfg, err := parseImportFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	return importer.Run(ctx, opts, cfg, stdin, stdout, stderr)
}

// parseImportFlags parses import's flags and the configuration, and
// reports every misuse at once (exit 2).
func parseImportFlags(args []string, getenv func(string) string, stderr io.Writer) (importer.Options, config.Config, error) {
	fs := flag.NewFlagSet("consumer import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o importer.Options
	fs.StringVar(&o.Format, "format", "", "csv or ndjson (default: from FILE's extension)")
	fs.StringVar(&o.Encoding, "encoding", importer.DefaultEncoding, "the file's text encoding: utf-8, or latin1 (ISO-8859-1, decoded to UTF-8; also latin-1, iso-8859-1)")
	fs.StringVar(&o.Batch, "batch", "", "the import's name: a row without a commandId gets one derived from it and the row's content (required then)")
	fs.BoolVar(&o.Wait, "wait", false, "wait for every row's terminal event")
	fs.StringVar(&o.Results, "results", "", "with --wait, write each row's outcome to this CSV file")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "how long --wait waits after the last publish; rows without an outcome by then are pending")
	fs.Float64Var(&o.Rate, "rate", 0, "most commands published a second (0: as fast as the stream takes them)")
	fs.IntVar(&o.InFlight, "in-flight", 256, "most publishes awaiting the stream's answer at once")
	fs.BoolVar(&o.SendInvalid, "send-invalid", false, "publish rows that break the rules as they are, for the service to answer with contact.failed")
	fs.DurationVar(&o.Progress, "progress", 5*time.Second, "how often progress is reported when stderr is not a terminal")
	fs.StringVar(&o.Provider, "provider", "", "the provider of rows that name none: "+strings.Join(rules.Providers(), " or "))
	fs.BoolVar(&o.IgnoreUnknownColumns, "ignore-unknown-columns", false, "leave out the CSV columns the import does not know (default: kept as metadata.<header>)")
	var mapErrs []error
	fs.Func("map", `rename a CSV header: "Header=field", field a column the import knows or metadata.<key> (repeatable)`, func(v string) error {
		i := strings.LastIndex(v, "=")
		if i <= 0 || i == len(v)-1 {
			return fmt.Errorf(`give "Header=field", not %q`, v)
		}
		header, field := strings.TrimSpace(v[:i]), strings.TrimSpace(v[i+1:])
		if !importer.MapField(field) {
			mapErrs = append(mapErrs, fmt.Errorf("--map %q: %q is not a field (name, email, mobile, tagId, companyName, provider, commandId or metadata.<key>)", v, field))
		}
		if o.Map == nil {
			o.Map = map[string]string{}
		}
		o.Map[header] = field
		return nil
	})
	fs.StringVar(&o.Repair, "repair", "", "repair the open failures a failures CSV (failures --csv, edited) names, instead of importing FILE")
	fs.BoolVar(&o.DryRun, "dry-run", false, "with --repair, print each row's diff and send nothing")
	load := toolFlags(fs, getenv, "DEFAULT_PROVIDER")
	if err := parseFlags(fs, args); err != nil {
		return o, config.Config{}, err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	usage := mapErrs
	if o.Provider != "" {
		if p := rules.NormalizeProvider(o.Provider); slices.Contains(rules.Providers(), p) {
			o.Provider = p
		} else {
			usage = append(usage, fmt.Errorf("--provider %q: %s", o.Provider, rules.UnknownProviderMessage(o.Provider, rules.Providers())))
		}
	}
	if o.Repair != "" && (fs.NArg() > 0 || o.Batch != "" || len(o.Map) > 0 || o.Provider != "" || o.IgnoreUnknownColumns || o.SendInvalid) {
		usage = append(usage, errors.New("--repair FILE is the file: it takes --dry-run, --wait, --timeout, --results and --encoding, not another FILE or the import's flags"))
	}
	if o.DryRun && o.Repair == "" {
		usage = append(usage, errors.New("--dry-run is for --repair"))
	}
	switch fs.NArg() {
	case 0:
		if o.Repair == "" {
			usage = append(usage, errors.New("give the file to import (- for stdin)"))
		}
	case 1:
		o.File = fs.Arg(0)
	default:
		usage = append(usage, fmt.Errorf("one file at a time: unexpected argument %q", fs.Arg(1)))
	}
	if o.Format == "" && o.File != "" {
		switch strings.ToLower(filepath.Ext(o.File)) {
		case ".csv":
			o.Format = "csv"
		case ".ndjson", ".jsonl":
			o.Format = "ndjson"
		default:
			usage = append(usage, fmt.Errorf("cannot tell the format of %q from its name: give --format csv or --format ndjson", o.File))
		}
	}
	if o.Format != "" && o.Format != "csv" && o.Format != "ndjson" {
		usage = append(usage, fmt.Errorf("--format must be csv or ndjson, not %q", o.Format))
	}
	if o.Format == "ndjson" && (len(o.Map) > 0 || o.IgnoreUnknownColumns) {
		usage = append(usage, errors.New("--map and --ignore-unknown-columns are for CSV: an NDJSON line's fields the service does not know are ignored"))
	}
	if enc, ok := importer.Encoding(o.Encoding); ok {
		o.Encoding = enc
	} else {
		usage = append(usage, fmt.Errorf("--encoding must be utf-8 or latin1, not %q", o.Encoding))
	}
	if given["results"] && !o.Wait {
		usage = append(usage, errors.New("--results holds the outcomes: give --wait too"))
	}
	if given["timeout"] && !o.Wait {
		usage = append(usage, errors.New("--timeout is how long --wait waits: give --wait too"))
	}
	if o.Timeout <= 0 {
		usage = append(usage, fmt.Errorf("--timeout must be more than 0, not %s", o.Timeout))
	}
	if o.Rate < 0 {
		usage = append(usage, fmt.Errorf("--rate must be 0 or more, not %g", o.Rate))
	}
	if o.InFlight < 1 || o.InFlight > 4096 {
		usage = append(usage, fmt.Errorf("--in-flight must be 1 to 4096, not %d", o.InFlight))
	}
	if o.Progress <= 0 {
		usage = append(usage, fmt.Errorf("--progress must be more than 0, not %s", o.Progress))
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
