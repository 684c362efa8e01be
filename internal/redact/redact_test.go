package redact

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestString(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"email", "contact jane.doe@example.com exists", "contact j***@example.com exists"},
		{"mobile with plus", "mobile +919876543210 taken", "mobile ***10 taken"},
		{"mobile with spaces", "call 98765 43210 now", "call ***10 now"},
		{"short numbers stay", "HTTP 503 after 12 tries", "HTTP 503 after 12 tries"},
		{"timestamps stay", "at 2026-11-21 10:00:00", "at 2026-11-21 10:00:00"},
		{"nothing to mask", "provider refused", "provider refused"},
		{"uuids stay", "replayOf=f258c1b6-dafe-5a48-b835-2c4581220954", "replayOf=f258c1b6-dafe-5a48-b835-2c4581220954"},
		{"digit-only id group stays", "id 6ccc45e5-f9ce-5022-84f3-458122095411", "id 6ccc45e5-f9ce-5022-84f3-458122095411"},
		{"mobile in quotes", `"mobile":"9876543210"`, `"mobile":"***10"`},
		{"two mobiles", "9876543210 and +919876543211", "***10 and ***11"},

		// The examples: masked by structure, not by ASCII pattern.
		{"non-ASCII domain", "provider said jane@exämple.com", "provider said j***@exämple.com"},
		{"quoted local part", `provider said "jane doe"@example.com`, "provider said j***@example.com"},
		{"non-ASCII local part", "jäne@example.com exists", "j***@example.com exists"},

		{"non-ASCII first letter", "älva@example.se exists", "ä***@example.se exists"},
		{"Cyrillic address", "адрес иван.петров@пример.рф занят", "адрес и***@пример.рф занят"},
		{"Devanagari local part", "संपर्क@उदाहरण.भारत", "स***@उदाहरण.भारत"},
		{"CJK local part", "邮箱 张伟@例子.中国 已存在", "邮箱 张***@例子.中国 已存在"},
		{"punycode domain", "jane@xn--exmple-cua.com", "j***@xn--exmple-cua.com"},
		{"uppercase", "JANE.DOE@EXAMPLE.COM is taken", "J***@EXAMPLE.COM is taken"},
		{"plus tag and subdomain", "jane+crm@mail.example.co.uk", "j***@mail.example.co.uk"},
		{"end of a sentence", "Write to jane@example.com.", "Write to j***@example.com."},
		{"in angle brackets", "Jane <jane@example.com>", "Jane <j***@example.com>"},
		{"after a colon", "mailto:jane@example.com", "mailto:j***@example.com"},
		{"after a key", "email=jane@example.com&x=1", "email=j***@example.com&x=1"},
		{"in single quotes", "'jane@example.com'", "'j***@example.com'"},
		{"two addresses", "jane@example.com, john@example.org", "j***@example.com, j***@example.org"},
		{"address after an address", "a@b.example@c.example", "a***@b.example@c.example"},
		{"JSON string", `{"email":"jäne@exämple.com","name":"x"}`, `{"email":"j***@exämple.com","name":"x"}`},
		{"JSON-escaped quoted local part", `{"message":"contact \"jane doe\"@example.com exists"}`, `{"message":"contact j***@example.com exists"}`},
		{"quoted local part with an at sign", `"jane@home"@example.com`, "j***@example.com"},
		{"JSON member holding @host stays", `{"user":"@example.com"}`, `{"user":"@example.com"}`},
		{"JSON array holding @host stays", `["", "@example.com"]`, `["", "@example.com"]`},
		{"handle stays", "ping @jane on chat", "ping @jane on chat"},
		{"IP address stays", "root@10.0.0.1", "root@10.0.0.1"},
		{"no domain stays", "user@localhost", "user@localhost"},

		{"Indian grouping", "mobile +91 98765 43210 exists", "mobile ***10 exists"},
		{"US grouping", "call (987) 654-3210 now", "call ***10 now"},
		{"US grouping with country code", "call +1 (987) 654-3210.", "call ***10."},
		{"dots", "987.654.3210", "***10"},
		{"hyphens", "tel:987-654-3210", "tel:***10"},
		{"non-breaking spaces", "+91\u00a098765\u00a043210", "***10"},
		{"Devanagari digits", "मोबाइल ९८७६५४३२१० मौजूद", "मोबाइल ***१० मौजूद"},
		{"fullwidth digits", "携帯 ０９０１２３４５６７８", "携帯 ***７８"},
		{"mobile inside JSON", `{"mobile":"+91 98765 43210","n":1}`, `{"mobile":"***10","n":1}`},
		{"mobile after an id", "id123 9876543210", "id123 ***10"},
		{"mobile before a word", "call 9876543210 5x", "call ***10 5x"},
		{"nine digits stay", "987 654 321", "987 654 321"},
		{"long id in a word stays", "order ORD9876543210123", "order ORD9876543210123"},
		{"hex id stays", "req 3f9a8b7c6d5e4f3a2b1c", "req 3f9a8b7c6d5e4f3a2b1c"},
		{"email and mobile", "jane@example.com / 9876543210", "j***@example.com / ***10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, String(tt.in), "masked text of %q", tt.in)
		})
	}
}

func TestEmailAndMobile(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{"email", Email("jane@example.com"), "j***@example.com"},
		{"not an email", Email("not-an-email"), "***"},
		{"empty local part", Email("@example.com"), "***"},
		{"non-ASCII local part keeps one whole character", Email("jäne@example.com"), "j***@example.com"},
		{"non-ASCII first character", Email("äne@example.com"), "ä***@example.com"},
		{"quoted local part", Email(`"jane doe"@example.com`), "j***@example.com"},
		{"quoted local part with an at sign", Email(`"jane@home"@example.com`), "j***@example.com"},
		{"IDN domain stays", Email("jane@exämple.com"), "j***@exämple.com"},
		{"mobile", Mobile("+919876543210"), "***10"},
		{"grouped mobile", Mobile("+91 98765 43210"), "***10"},
		{"mobile in other digits", Mobile("९८७६५४३२१०"), "***१०"},
		{"too short", Mobile("1"), "***"},
		{"two digits", Mobile("12"), "***"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.got)
		})
	}
}

// TestStringIsLinear masks a megabyte of text full of at signs and digit
// runs: linear work takes milliseconds, a quadratic scan would take minutes,
// so the generous bound holds on any machine.
func TestStringIsLinear(t *testing.T) {
	for name, unit := range map[string]string{
		"at signs":        "a@",
		"quoted":          `"x"@`,
		"digits":          "1 ",
		"emails":          "jäne@exämple.com ",
		"separated runs":  "12-",
		"mobiles":         "+91 98765 43210, ",
		"unterminated ip": "a@1.",
	} {
		t.Run(name, func(t *testing.T) {
			in := strings.Repeat(unit, (1<<20)/len(unit))
			start := time.Now()
			String(in)
			assert.Less(t, time.Since(start), 3*time.Second, "masking a megabyte of %q", unit)
		})
	}
}

func TestReplaceAttrMasksLogLines(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: ReplaceAttr}))
	log.Info("provider said jane@example.com", "error", errors.New("mobile 9876543210 exists"), "note", "a@b.io", "n", 9876543210)
	out := buf.String()
	assert.NotContains(t, out, "jane@example.com", "emails in attributes are masked")
	assert.NotContains(t, out, "9876543210\"", "mobiles in errors are masked")
	assert.Contains(t, out, "***10", "the masked form keeps the last two digits")
	assert.Contains(t, out, "a***@b.io")
}

func BenchmarkStringNothingToMask(b *testing.B) {
	for b.Loop() {
		String("7168773c-9ddf-58dd-b9ad-45791ab996da")
	}
}
