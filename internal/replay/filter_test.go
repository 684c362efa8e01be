package replay

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
)

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
	}{
		{"2026-11-22T10:30:00Z", time.Date(2026, 11, 22, 10, 30, 0, 0, time.UTC)},
		{"2026-11-22T10:30:00.5+05:30", time.Date(2026, 11, 22, 5, 0, 0, 5e8, time.UTC)},
		{"2026-11-20", time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)},
		{"2h", now.Add(-2 * time.Hour)},
		{"90m", now.Add(-90 * time.Minute)},
		{"3d", now.Add(-72 * time.Hour)},
		{" 0s ", now},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTime(tt.in, now)
			require.NoError(t, err)
			assert.True(t, tt.want.Equal(got), "want %s, got %s", tt.want, got)
		})
	}
	for _, bad := range []string{"", "yesterday", "-2h", "2x", "d", "2026-13-01", "1.5d"} {
		t.Run("refuses "+bad, func(t *testing.T) {
			_, err := ParseTime(bad, now)
			assert.Error(t, err, "%q is not a time", bad)
		})
	}
}

func TestParseReasons(t *testing.T) {
	got, err := ParseReasons([]string{"exhausted, invalid", "rejected", "exhausted"})
	require.NoError(t, err)
	assert.Equal(t, []contact.Reason{contact.ReasonExhausted, contact.ReasonInvalid, contact.ReasonRejected}, got, "comma lists and repeats, without duplicates")

	_, err = ParseReasons([]string{"exausted,bogus"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"exausted"`, "every unknown reason is named")
	assert.Contains(t, err.Error(), `"bogus"`)
}

func TestFilterMatch(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	f := &Failure{
		Event: contact.Event{Subject: "c-1", Time: at},
		Data:  contact.Failed{CommandID: "c-1", Provider: "pik", Reason: contact.ReasonRejected},
	}
	tests := []struct {
		name string
		flt  Filter
		want bool
	}{
		{"zero filter", Filter{}, true},
		{"since before", Filter{Since: at.Add(-time.Second)}, true},
		{"since equal", Filter{Since: at}, true},
		{"since after", Filter{Since: at.Add(time.Second)}, false},
		{"until equal", Filter{Until: at}, true},
		{"until before", Filter{Until: at.Add(-time.Second)}, false},
		{"reason among", Filter{Reasons: []contact.Reason{contact.ReasonExhausted, contact.ReasonRejected}}, true},
		{"reason not among", Filter{Reasons: []contact.Reason{contact.ReasonExhausted}}, false},
		{"provider", Filter{Providers: []string{"pik"}}, true},
		{"other provider", Filter{Providers: []string{"instantpay"}}, false},
		{"command id", Filter{CommandID: "c-1"}, true},
		{"other command id", Filter{CommandID: "c-2"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.flt.Match(f))
		})
	}
	assert.Error(t, Filter{Since: at, Until: at.Add(-time.Hour)}.Validate(), "until before since")
	assert.Error(t, Filter{Limit: -1}.Validate())
	assert.NoError(t, Filter{Since: at, Until: at}.Validate())
}
