package schemas

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/clients/instantpay"
	"github.com/contactrelay/contactrelay/internal/clients/pik"
	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/rules"
)

// compiled compiles the embedded schemas, failing the test if they do not.
func compiled(t testing.TB) *Schemas {
	t.Helper()
	s, err := Compile()
	require.NoError(t, err, "the embedded schemas compile")
	return s
}

// example is one file under examples/<schema>/<valid|invalid>/.
type example struct {
	schema string // Command, Created or Failed
	valid  bool
	path   string // relative to examples/, e.g. contact.create/valid/minimal.json
	body   []byte
}

// name is the example's path without its schema and extension, for t.Run
// and for the exception lists: "valid/minimal".
func (e example) name() string {
	_, rest, _ := strings.Cut(e.path, "/")
	return strings.TrimSuffix(rest, ".json")
}

func readExamples(t testing.TB) []example {
	t.Helper()
	var out []example
	root := os.DirFS("examples")
	err := fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		parts := strings.Split(p, "/")
		require.Len(t, parts, 3, "example %s is at examples/<schema>/<valid|invalid>/<name>.json", p)
		require.Contains(t, []string{"valid", "invalid"}, parts[1], "example %s is labelled valid or invalid", p)
		require.Equal(t, ".json", path.Ext(p), "example %s is a .json file", p)
		body, err := fs.ReadFile(root, p)
		require.NoError(t, err)
		out = append(out, example{schema: parts[0], valid: parts[1] == "valid", path: p, body: body})
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, out, "there are examples")
	return out
}

func examplesOf(t testing.TB, schema string) []example {
	t.Helper()
	var out []example
	for _, e := range readExamples(t) {
		if e.schema == schema {
			out = append(out, e)
		}
	}
	return out
}

func TestCompile(t *testing.T) {
	s := compiled(t)
	tests := []struct {
		name    string
		call    func() error
		wantErr error
	}{
		{"unknown schema", func() error { return s.Validate("contact.deleted", []byte(`{}`)) }, ErrUnknownSchema},
		{"unknown event type", func() error { return s.ValidateEvent([]byte(`{"type":"contact.create"}`)) }, ErrUnknownSchema},
		{"not JSON", func() error { return s.Validate(Command, []byte(`{"name":`)) }, nil},
		{"event not JSON", func() error { return s.ValidateEvent([]byte(`nope`)) }, nil},
		{"trailing data", func() error { return s.Validate(Command, []byte(`{} {}`)) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			require.Error(t, err)
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
			}
		})
	}

	t.Run("every schema in FS has its $id", func(t *testing.T) {
		paths, err := fs.Glob(FS(), "*.schema.json")
		require.NoError(t, err)
		for _, name := range Names() {
			assert.Contains(t, paths, name+".schema.json", "each message schema is embedded")
		}
		for _, p := range paths {
			b, err := fs.ReadFile(FS(), p)
			require.NoError(t, err)
			var head struct {
				Schema string `json:"$schema"`
				ID     string `json:"$id"`
			}
			require.NoError(t, json.Unmarshal(b, &head), "%s is JSON", p)
			assert.Equal(t, "https://json-schema.org/draft/2020-12/schema", head.Schema, "%s declares draft 2020-12", p)
			assert.Equal(t, BaseURI+p, head.ID, "%s has the $id of its file name", p)
		}
		_, err = fs.Stat(FS(), AsyncAPI)
		assert.NoError(t, err, "the AsyncAPI document is embedded")
	})
}

func TestExamples(t *testing.T) {
	s := compiled(t)
	all := readExamples(t)
	for _, name := range Names() {
		var valid, invalid int
		for _, e := range all {
			if e.schema == name && e.valid {
				valid++
			} else if e.schema == name {
				invalid++
			}
		}
		assert.GreaterOrEqual(t, valid, 3, "%s has several valid examples", name)
		assert.GreaterOrEqual(t, invalid, 3, "%s has several invalid examples", name)
	}
	for _, e := range all {
		t.Run(e.schema+"/"+e.name(), func(t *testing.T) {
			require.Contains(t, Names(), e.schema, "examples/%s names a message schema", e.schema)
			err := s.Validate(e.schema, e.body)
			if e.valid {
				assert.NoError(t, err, "a valid example validates")
				return
			}
			require.Error(t, err, "an invalid example is refused")
			t.Logf("refused as expected: %v", err)
		})
	}
}

func TestGoldenEventsValidate(t *testing.T) {
	s := compiled(t)
	paths, err := filepath.Glob(filepath.Join("..", "internal", "events", "testdata", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, paths, "the events package has golden files")
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			body, err := os.ReadFile(p)
			require.NoError(t, err)
			assert.NoError(t, s.ValidateEvent(body), "the golden event validates against its type's schema")
		})
	}
}

// schemaOnly lists the command examples the schema refuses while
// contact.DecodeCommand and rules.Validator accept them, each with the
// reason. Nothing the Go validation refuses is accepted by the schema.
var schemaOnly = map[string]string{
	"invalid/provider-unknown":      "routing is a run-time rule: the handler answers a provider it does not have with unroutable, not invalid",
	"invalid/pik-first-name-number": "pik fields are a provider rule: the PIK client's Validate checks them, for commands routed to PIK only",
	"invalid/optional-null":         "DecodeCommand reads null as an absent field; the schema asks for the field's type",
	"invalid/name-padded-over-200":  "the service counts the name's length after trimming; maxLength counts the untrimmed string",
}

func TestCommandExamplesAgreeWithGoValidation(t *testing.T) {
	s := compiled(t)
	v := rules.NewValidator()
	seen := map[string]bool{}
	for _, e := range examplesOf(t, Command) {
		t.Run(e.name(), func(t *testing.T) {
			seen[e.name()] = true
			cmd, err := contact.DecodeCommand(e.body)
			var goErrs []contact.FieldError
			if err == nil {
				goErrs = v.Validate(cmd)
			}
			goRefuses := err != nil || len(goErrs) > 0
			schemaErr := s.Validate(Command, e.body)

			if why, ok := schemaOnly[e.name()]; ok {
				assert.Error(t, schemaErr, "the schema refuses it (%s)", why)
				assert.False(t, goRefuses, "Go validation accepts it (%s); got %v %v", why, err, goErrs)
				return
			}
			assert.Equal(t, schemaErr != nil, goRefuses,
				"the schema and Go validation agree; schema: %v; decode: %v; rules: %v", schemaErr, err, goErrs)
			assert.Equal(t, e.valid, !goRefuses, "Go validation matches the example's label")
		})
	}
	for name := range schemaOnly {
		assert.True(t, seen[name], "the exception %s names an example that exists", name)
	}
}

// TestCommandEdgeCasesAgreeWithGoValidation holds the agreement cases that
// are too fine for an example file: white space Go trims, and email
// addresses where format checkers differ.
func TestCommandEdgeCasesAgreeWithGoValidation(t *testing.T) {
	s := compiled(t)
	v := rules.NewValidator()
	const normalised = "the service normalises it (rules.Normalize); the schema describes the normal form, which events carry"
	const idn = "an internationalized address: the schema's email format is ASCII-only (idn-email would take it), Go's email rule takes Unicode"
	tests := []struct {
		name       string
		set        map[string]any
		schemaOnly string // why the schema refuses what Go validation accepts
	}{
		{name: "name of tabs and newlines", set: map[string]any{"name": "\t\n\r "}},
		{name: "name of no-break spaces", set: map[string]any{"name": "\u00a0\u00a0"}},
		{name: "name of ideographic spaces", set: map[string]any{"name": "\u3000"}},
		{name: "name of a next-line character", set: map[string]any{"name": "\u0085"}},
		{name: "name of a vertical tab", set: map[string]any{"name": "\v"}},
		{name: "name of one letter", set: map[string]any{"name": "J"}},
		{name: "name of 200 letters", set: map[string]any{"name": strings.Repeat("é", 200)}},
		{name: "name of 201 letters", set: map[string]any{"name": strings.Repeat("é", 201)}},
		{name: "email without a domain dot", set: map[string]any{"email": "jane@example"}},
		{name: "email with an IP literal", set: map[string]any{"email": "jane@[192.0.2.1]"}},
		{name: "email with a numeric top-level domain", set: map[string]any{"email": "jane@example.123"}},
		{name: "email with a display name", set: map[string]any{"email": "Jane <jane@example.com>"}},
		{name: "email with two at signs", set: map[string]any{"email": "jane@doe@example.com"}},
		{name: "email with a plus", set: map[string]any{"email": "jane+crm@example.com"}},
		{name: "email with a hyphenated domain", set: map[string]any{"email": "jane@my-example.co.uk"}},
		{name: "email with a leading dot", set: map[string]any{"email": ".jane@example.com"}},
		{name: "email with a space", set: map[string]any{"email": "jane doe@example.com"}},
		{name: "email with a quoted local part", set: map[string]any{"email": `"jane doe"@example.com`}},
		{name: "email with a Unicode local part", set: map[string]any{"email": "josé@example.com"}, schemaOnly: idn},
		{name: "email with a Unicode domain", set: map[string]any{"email": "jane@münchen.de"}, schemaOnly: idn},
		{name: "email of 255 characters", set: map[string]any{"email": strings.Repeat("j", 64) + "@" + strings.Repeat("e", 63) + "." + strings.Repeat("x", 63) + "." + strings.Repeat("m", 62)}},
		{name: "mobile of 16 digits", set: map[string]any{"mobile": "1234567890123456"}},
		{name: "mobile with two pluses", set: map[string]any{"mobile": "++1234567890"}},
		{name: "mobile with a trailing newline", set: map[string]any{"mobile": "9876543210\n"}},
		{name: "mobile with spaces", set: map[string]any{"mobile": "+91 98765 10011"}, schemaOnly: normalised},
		{name: "mobile with dashes and dots", set: map[string]any{"mobile": "987-654.3210"}, schemaOnly: normalised},
		{name: "mobile with parentheses", set: map[string]any{"mobile": "+44 (0)20 7946 0958"}},
		{name: "provider in capitals", set: map[string]any{"provider": " PIK "}, schemaOnly: normalised},
		{name: "tagId empty", set: map[string]any{"tagId": ""}},
		{name: "tagId of 129 characters", set: map[string]any{"tagId": strings.Repeat("t", 129)}},
		{name: "metadata key of 129 characters", set: map[string]any{"metadata": map[string]any{strings.Repeat("k", 129): "v"}}},
		{name: "metadata value of 1025 characters", set: map[string]any{"metadata": map[string]any{"k": strings.Repeat("v", 1025)}}},
		{name: "metadata empty", set: map[string]any{"metadata": map[string]any{}}},
		{name: "metadata value null", set: map[string]any{"metadata": map[string]any{"k": nil}}, schemaOnly: "DecodeCommand reads a null metadata value as an empty string; the schema asks for a string"},
		{name: "provider empty", set: map[string]any{"provider": ""}, schemaOnly: "DecodeCommand reads an empty provider as none given (the default provider's); the schema asks for a provider's name"},
		{name: "pik not an object", set: map[string]any{"pik": "SUP-1"}},
		{name: "companyName a number", set: map[string]any{"companyName": 7}},
		{name: "commandId of 128 characters", set: map[string]any{"commandId": strings.Repeat("c", 128)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := map[string]any{"name": "Jane", "email": "jane@example.com", "mobile": "9876543210", "tagId": "t"}
			for k, val := range tt.set {
				cmd[k] = val
			}
			body, err := json.Marshal(cmd)
			require.NoError(t, err)
			decoded, derr := contact.DecodeCommand(body)
			var goErrs []contact.FieldError
			if derr == nil {
				decoded, _ = rules.Normalize(decoded) // as the service does
				goErrs = v.Validate(decoded)
			}
			goRefuses := derr != nil || len(goErrs) > 0
			schemaErr := s.Validate(Command, body)
			if tt.schemaOnly != "" {
				assert.Error(t, schemaErr, "the schema refuses it (%s)", tt.schemaOnly)
				assert.False(t, goRefuses, "Go validation accepts it (%s); got %v %v", tt.schemaOnly, derr, goErrs)
				return
			}
			assert.Equal(t, schemaErr != nil, goRefuses,
				"the schema and Go validation agree; schema: %v; decode: %v; rules: %v", schemaErr, derr, goErrs)
		})
	}
}

// TestRuntimeRulesBeyondTheSchema shows where the rules the schema leaves
// to the running service are applied: provider rules by the provider
// clients' Validate. (Routing, the other run-time rule, is covered by the
// unroutable cases of TestEmittedEventsValidate.)
func TestRuntimeRulesBeyondTheSchema(t *testing.T) {
	s := compiled(t)
	ip, err := instantpay.New(instantpay.Config{ClientID: "id", ClientSecret: "secret"})
	require.NoError(t, err)
	pk, err := pik.New(pik.Config{BaseURL: "https://pik.invalid", AppID: "app", AppSecret: "secret"})
	require.NoError(t, err)
	tests := []struct {
		name      string
		body      string
		validate  func(contact.Command) []contact.FieldError
		wantField string
		schemaToo bool // the schema refuses it as well
	}{
		{
			name:      "InstantPay tagId that is not 24 hexadecimal digits",
			body:      `{"provider":"instantpay","name":"Jane","email":"jane@example.com","mobile":"9876543210","tagId":"vip"}`,
			validate:  ip.Validate,
			wantField: "tagId",
		},
		{
			name:      "PIK field of the wrong type",
			body:      mustRead(t, filepath.Join("examples", Command, "invalid", "pik-first-name-number.json")),
			validate:  pk.Validate,
			wantField: "pik.firstName",
			schemaToo: true,
		},
		{
			name:      "PIK contactCode of spaces",
			body:      `{"provider":"pik","name":"Jane","email":"jane@example.com","mobile":"9876543210","tagId":"t","pik":{"contactCode":"  "}}`,
			validate:  pk.Validate,
			wantField: "pik.contactCode",
			schemaToo: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, err := contact.DecodeCommand([]byte(tt.body))
			require.NoError(t, err)
			require.Empty(t, rules.NewValidator().Validate(cmd), "the contract's common rules accept it")
			errs := tt.validate(cmd)
			require.NotEmpty(t, errs, "the provider refuses it")
			assert.Equal(t, tt.wantField, errs[0].Field)
			schemaErr := s.Validate(Command, []byte(tt.body))
			if tt.schemaToo {
				assert.Error(t, schemaErr, "the schema refuses it as well")
			} else {
				assert.NoError(t, schemaErr, "the schema leaves it to the provider")
			}
		})
	}
}

func mustRead(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return string(b)
}

// TestEventExamplesMatchGoTypes checks the valid event examples against
// the Go types: every field is one the Go types have, a round trip through
// them keeps the document, and id and subject are what the service would
// derive.
func TestEventExamplesMatchGoTypes(t *testing.T) {
	for _, schema := range []string{Created, Failed} {
		for _, e := range examplesOf(t, schema) {
			if !e.valid {
				continue
			}
			t.Run(schema+"/"+e.name(), func(t *testing.T) {
				var ev contact.Event
				strictDecode(t, e.body, &ev)
				var data any
				var commandID, replayOf string
				switch ev.Type {
				case contact.SubjectCreated:
					var d contact.Created
					strictDecode(t, ev.Data, &d)
					data, commandID, replayOf = d, d.CommandID, d.ReplayOf
				case contact.SubjectFailed:
					var d contact.Failed
					strictDecode(t, ev.Data, &d)
					data, commandID, replayOf = d, d.CommandID, d.ReplayOf
				default:
					require.Failf(t, "unexpected type", "type %q", ev.Type)
				}
				assert.Equal(t, schema, ev.Type, "the example's type is its schema's")
				assert.Equal(t, commandID, ev.Subject, "subject is the commandId")
				assert.Equal(t, contact.EventID(commandID, replayOf, ev.Type), ev.ID, "id is the deterministic event id")

				again, err := events.NewEvent(ev.Source, ev.Type, commandID, replayOf, ev.Time, data)
				require.NoError(t, err)
				got, err := json.Marshal(again)
				require.NoError(t, err)
				assert.JSONEq(t, string(e.body), string(got), "the Go types encode the example as it is")
			})
		}
	}
}

func strictDecode(t testing.TB, b []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(v), "the document has only fields the Go type knows")
}
