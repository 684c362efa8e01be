package failstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/contact"
)

// Search finds the open failures q selects whose message or commandId,
// or whose command's name, email, mobile, companyName or a metadata
// value, contains text, ignoring case (a mobile also with its spaces,
// dashes and dots left out of both). It reads back from the newest entry
// stored before sequence before (0: the newest), as LoadPage does but
// whole entries, until it has found limit of them, and returns them
// newest first with the cursor of the next page: it holds no more than a
// page, costs a direct get per entry it reads (a search that finds fewer
// than limit reads every entry: minutes at a million), tells progress
// (when set) the entries read out of those held as it goes, and stops
// with ctx's error when ctx is done.
func Search(ctx context.Context, js jetstream.JetStream, q Select, text string, limit int, before uint64, progress func(read, held uint64)) (*Page, error) {
	needle := strings.ToLower(strings.TrimSpace(text))
	if needle == "" {
		return nil, fmt.Errorf("search: no text")
	}
	phone := mobileForm(needle)
	return loadPage(ctx, js, q, limit, before, func(sum *Summary, data []byte) bool {
		return containsFold(sum.Message, needle) || containsFold(sum.CommandID, needle) || commandContains(data, needle, phone)
	}, progress)
}

// searched is what Search reads of an entry's command.
type searched struct {
	Name        string         `json:"name"`
	Email       string         `json:"email"`
	Mobile      string         `json:"mobile"`
	CompanyName string         `json:"companyName"`
	Metadata    map[string]any `json:"metadata"`
}

// commandContains reports whether the command of the failed event body
// holds needle (lower case) in a field a customer is found by.
func commandContains(body []byte, needle, phone string) bool {
	var ev contact.Event
	if json.Unmarshal(body, &ev) != nil {
		return false
	}
	var f contact.Failed
	if json.Unmarshal(ev.Data, &f) != nil || len(f.Command) == 0 {
		return false
	}
	var c searched
	if json.Unmarshal(f.Command, &c) != nil {
		return false
	}
	for _, v := range []string{c.Name, c.Email, c.Mobile, c.CompanyName} {
		if containsFold(v, needle) {
			return true
		}
	}
	if phone != "" && strings.Contains(mobileForm(c.Mobile), phone) {
		return true
	}
	for _, v := range c.Metadata {
		if s, ok := v.(string); ok && containsFold(s, needle) {
			return true
		}
	}
	return false
}

// mobileForm returns s without spaces, dashes and dots when what is left
// is a mobile's characters (digits, a leading '+'), else "".
func mobileForm(s string) string {
	s = strings.NewReplacer(" ", "", "-", "", ".", "").Replace(s)
	if len(strings.TrimPrefix(s, "+")) < 3 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] == '+' && i == 0) {
			return ""
		}
	}
	return s
}
