package replay

import (
	"encoding/json"
	"io"
	"slices"
	"strings"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/sheet"
)

// CSVHeader is the fixed part of the failures CSV's header (consumer
// failures --csv, the console's download): the failure, then the
// command's fields. A metadata.<key> column per metadata key of the
// exported failures follows, then one pik column.
var CSVHeader = []string{"failureId", "commandId", "reason", "message", "fields",
	"provider", "name", "email", "mobile", "tagId", "companyName"}

// CSVPik is the failures CSV's last column: the command's pik object, as
// JSON.
const CSVPik = "pik"

// WriteCSV writes failures as the failures CSV, one row each, in the
// order given: the failed event's id (failureId), commandId, reason,
// message, the broken fields (space-separated), then the command's fields
// unmasked (provider, name, email, mobile, tagId, companyName, a
// metadata.<key> column per metadata key of these failures, sorted, and
// pik as JSON), every cell spreadsheet-safe (sheet.Writer). A failure
// without a command that decodes (malformed) has its command's columns
// empty. It is personal data unmasked: its callers log the export.
func WriteCSV(w io.Writer, failures []*Failure) error {
	cmds := make([]contact.Command, len(failures))
	var keys []string
	for i, f := range failures {
		cmds[i] = failedCommand(f)
		for k := range cmds[i].Metadata {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	cw := sheet.NewWriter(w)
	header := slices.Clone(CSVHeader)
	for _, k := range keys {
		header = append(header, "metadata."+k)
	}
	if err := cw.Write(append(header, CSVPik)); err != nil {
		return err
	}
	for i, f := range failures {
		c := cmds[i]
		rec := []string{f.Event.ID, f.CommandID(), string(f.Data.Reason), f.Data.Message, sheet.Fields(f.Data.Errors),
			c.Provider, c.Name, c.Email, c.Mobile, c.TagID, c.CompanyName}
		for _, k := range keys {
			rec = append(rec, c.Metadata[k])
		}
		if err := cw.Write(append(rec, pikCell(c))); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// CSVCell returns what the failures CSV holds for f in the command's
// column named column (provider, name, email, mobile, tagId, companyName,
// metadata.<key> or pik), unguarded, and whether column is one of them:
// what a repair from the file compares an edited cell with.
func CSVCell(f *Failure, column string) (string, bool) {
	c := failedCommand(f)
	switch column {
	case "provider":
		return c.Provider, true
	case "name":
		return c.Name, true
	case "email":
		return c.Email, true
	case "mobile":
		return c.Mobile, true
	case "tagId":
		return c.TagID, true
	case "companyName":
		return c.CompanyName, true
	case CSVPik:
		return pikCell(c), true
	}
	if key, ok := strings.CutPrefix(column, "metadata."); ok && key != "" {
		return c.Metadata[key], true
	}
	return "", false
}

// pikCell is the pik column's cell: the command's pik object as JSON.
func pikCell(c contact.Command) string {
	if len(c.PIK) == 0 {
		return ""
	}
	b, err := json.Marshal(c.PIK)
	if err != nil {
		return ""
	}
	return string(b)
}

// failedCommand returns the command a failure carries, as far as it
// decodes (the fields of a known field's wrong type are left empty).
func failedCommand(f *Failure) contact.Command {
	if len(f.Data.Command) == 0 {
		return contact.Command{}
	}
	cmd, _ := contact.DecodeCommand(f.Data.Command)
	return cmd
}
