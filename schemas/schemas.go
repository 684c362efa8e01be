// Package schemas holds the wire contract of contactrelay as JSON Schema
// (draft 2020-12) documents, one per message, and the AsyncAPI 3.0 document
// that ties them to NATS subjects. The documents are embedded; Compile
// turns them into validators for publishers, subscribers and tests.
package schemas

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// BaseURI is the common prefix of the documents' $id: a schema named N has
// the $id BaseURI + N + ".schema.json".
const BaseURI = "https://contactrelay.dev/schemas/"

// Names of the message schemas, equal to the NATS subjects they describe.
const (
	Command = "contact.create"
	Created = "contact.created"
	Failed  = "contact.failed"
)

// AsyncAPI is the name of the AsyncAPI document in FS.
const AsyncAPI = "asyncapi.yaml"

//go:embed *.schema.json asyncapi.yaml
var files embed.FS

// FS returns the embedded documents: every <name>.schema.json and
// asyncapi.yaml, at the root.
func FS() fs.FS { return files }

// Names returns the names of the message schemas: Command, Created and
// Failed.
func Names() []string { return []string{Command, Created, Failed} }

// ErrUnknownSchema is returned by Validate for a name that has no schema.
var ErrUnknownSchema = errors.New("no such schema")

// Schemas validates documents against the compiled message schemas. Format
// (email, date-time, uuid) and content (base64) assertions are on. A
// Schemas is safe for concurrent use.
type Schemas struct {
	byName map[string]*jsonschema.Schema
}

// Compile compiles the embedded schemas. It loads nothing from the network:
// references between the documents resolve to the embedded copies.
func Compile() (*Schemas, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.AssertContent()
	paths, err := fs.Glob(files, "*.schema.json")
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		b, err := files.ReadFile(p)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("read schema %s: %w", p, err)
		}
		if err := c.AddResource(BaseURI+p, doc); err != nil {
			return nil, fmt.Errorf("add schema %s: %w", p, err)
		}
	}
	s := &Schemas{byName: map[string]*jsonschema.Schema{}}
	for _, name := range Names() {
		sch, err := c.Compile(BaseURI + name + ".schema.json")
		if err != nil {
			return nil, fmt.Errorf("compile schema %s: %w", name, err)
		}
		s.byName[name] = sch
	}
	return s, nil
}

// Validate validates the JSON document doc against the schema called name
// (Command, Created or Failed). It returns nil when doc is valid, an error
// when doc is not JSON, and otherwise a *jsonschema.ValidationError that
// lists every broken rule with its place in doc.
func (s *Schemas) Validate(name string, doc []byte) error {
	sch := s.byName[name]
	if sch == nil {
		return fmt.Errorf("%w: %q (known: %s)", ErrUnknownSchema, name, strings.Join(Names(), ", "))
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("%s: not a JSON document: %w", name, err)
	}
	return sch.Validate(v)
}

// ValidateEvent validates an event against the schema its type names
// (contact.created or contact.failed).
func (s *Schemas) ValidateEvent(doc []byte) error {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(doc, &head); err != nil {
		return fmt.Errorf("event: not a JSON object: %w", err)
	}
	if !slices.Contains([]string{Created, Failed}, head.Type) {
		return fmt.Errorf("%w: event type %q (known: %s, %s)", ErrUnknownSchema, head.Type, Created, Failed)
	}
	return s.Validate(head.Type, doc)
}
