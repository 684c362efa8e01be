package contact

import (
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
)

// TestEventIDIsUUIDv5 holds EventID, written on the standard library, to
// the UUID version 5 of google/uuid that gave the ids of every event
// published so far: the same inputs must keep naming the same events.
func TestEventIDIsUUIDv5(t *testing.T) {
	ns := uuid.MustParse("6f1b2c1e-4c43-5b0a-9a57-3f0f7f1c2a10")
	long := strings.Repeat("x", 1024)
	for _, in := range [][3]string{
		{"c-1", "", SubjectCreated},
		{"c-1", "", SubjectFailed},
		{"c-1", "7168773c-9ddf-58dd-b9ad-45791ab996da", SubjectFailed},
		{"CONTACT_COMMANDS:7", "conflict:v1:0123456789abcdef0123456789abcdef", SubjectFailed},
		{"", "", ""},
		{"é\x00\xff", "\x00", "contact.created"},
		{long, long, SubjectCreated}, // longer than EventID's stack buffer
	} {
		want := uuid.NewSHA1(ns, []byte(in[2]+"\x00"+in[1]+"\x00"+in[0])).String()
		assert.Equal(t, want, EventID(in[0], in[1], in[2]), "EventID%q", in)
	}
}

func FuzzEventIDIsUUIDv5(f *testing.F) {
	f.Add("c-1", "", SubjectCreated)
	ns := uuid.MustParse("6f1b2c1e-4c43-5b0a-9a57-3f0f7f1c2a10")
	f.Fuzz(func(t *testing.T, id, gen, typ string) {
		want := uuid.NewSHA1(ns, []byte(typ+"\x00"+gen+"\x00"+id)).String()
		if got := EventID(id, gen, typ); got != want {
			t.Fatalf("EventID(%q, %q, %q) = %s, want %s", id, gen, typ, got, want)
		}
	})
}

func BenchmarkEventID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = EventID("crm-000123", "", SubjectCreated)
	}
}
