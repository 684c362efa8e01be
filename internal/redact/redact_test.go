package redact

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"

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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, String(tt.in))
		})
	}
}

func TestEmailAndMobile(t *testing.T) {
	assert.Equal(t, "j***@example.com", Email("jane@example.com"))
	assert.Equal(t, "***", Email("not-an-email"))
	assert.Equal(t, "***10", Mobile("+919876543210"))
	assert.Equal(t, "***", Mobile("1"))
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
