package redact

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	testSecret = "s3cr3t/value&more"
	testToken  = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhcHAifQ.c2lnbmF0dXJl"
)

func TestSecretsString(t *testing.T) {
	s := NewSecrets(testSecret, "short", "")
	s.Add(testToken)
	tests := []struct {
		name, in, want string
	}{
		{"as it is", "bad secret " + testSecret, "bad secret [REDACTED]"},
		{"part of a longer string", "x" + testSecret + "y", "x[REDACTED]y"},
		{"twice", testSecret + " and " + testSecret, "[REDACTED] and [REDACTED]"},
		{"a rotating token", "Bearer " + testToken + " expired", "Bearer [REDACTED] expired"},
		{"escaped slash", `s3cr3t\/value&more`, "[REDACTED]"},
		{"HTML-escaped", `s3cr3t/value\u0026more`, "[REDACTED]"},
		{"both", `s3cr3t\/value\u0026more`, "[REDACTED]"},
		{"short secrets are not scrubbed", "a short answer", "a short answer"},
		{"nothing to scrub", "provider refused", "provider refused"},
		{"a prefix stays", "s3cr3t/val", "s3cr3t/val"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, s.String(tt.in))
		})
	}
}

func TestSecretsOverlapping(t *testing.T) {
	s := NewSecrets("abcdefgh", "efghijkl")
	assert.Equal(t, "<[REDACTED]>", s.String("<abcdefghijkl>"), "two overlapping secrets are one span, with nothing of either left")
	s = NewSecrets("abababab")
	assert.Equal(t, "<[REDACTED]>", s.String("<ababababab>"), "overlapping occurrences of one secret are one span")
}

func TestSecretsBytes(t *testing.T) {
	s := NewSecrets(testSecret)
	escaped := func(v string) string { // every character as \u00XX
		var b strings.Builder
		for _, r := range v {
			fmt.Fprintf(&b, `\u%04X`, r)
		}
		return b.String()
	}
	tests := []struct {
		name, in, want string
	}{
		{"in a JSON string", `{"message":"bad secret ` + testSecret + `"}`, `{"message":"bad secret [REDACTED]"}`},
		{"every character escaped", `{"message":"bad ` + escaped(testSecret) + `!","n":1}`, `{"message":"bad [REDACTED]!","n":1}`},
		{"partly escaped", `{"m":"s3cr3t\/v\u0061lue\u0026more\n"}`, `{"m":"[REDACTED]\n"}`},
		{"in a key", `{"` + escaped(testSecret) + `":1}`, `{"[REDACTED]":1}`},
		{"escaped elsewhere", `{"m":"line\nbreak","s":"` + testSecret + `"}`, `{"m":"line\nbreak","s":"[REDACTED]"}`},
		{"not JSON", `<html>` + testSecret + `</html>`, `<html>[REDACTED]</html>`},
		{"unterminated string", `{"m":"\"` + testSecret, `{"m":"\"[REDACTED]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(s.Bytes([]byte(tt.in)))
			assert.Equal(t, tt.want, got)
			if json.Valid([]byte(tt.in)) {
				assert.True(t, json.Valid([]byte(got)), "scrubbed JSON stays JSON: %s", got)
			}
		})
	}
}

func TestSecretsReturnTheirInputWhenClean(t *testing.T) {
	s := NewSecrets(testSecret)
	in := []byte(`{"message":"a line\nwith escapes","id":42}`)
	out := s.Bytes(in)
	require.NotEmpty(t, out)
	assert.Same(t, &in[0], &out[0], "clean bytes are returned as they are, not copied")

	var none *Secrets
	assert.Equal(t, "x "+testSecret, none.String("x "+testSecret), "a nil Secrets holds none")
	assert.Equal(t, []byte(testSecret), none.Bytes([]byte(testSecret)))
}

func TestSecretsKeepTheNewestRotating(t *testing.T) {
	s := NewSecrets(testSecret)
	token := func(i int) string { return fmt.Sprintf("token-number-%03d", i) }
	for i := range MaxRotating + 1 {
		s.Add(token(i))
	}
	s.Add(token(MaxRotating)) // again: no change
	assert.Equal(t, token(0), s.String(token(0)), "the oldest beyond MaxRotating is dropped")
	for i := 1; i <= MaxRotating; i++ {
		assert.Equal(t, Marker, s.String(token(i)), "token %d is held", i)
	}
	assert.Equal(t, Marker, s.String(testSecret), "fixed secrets are never dropped")
}

func TestSecretsAreLinear(t *testing.T) {
	s := NewSecrets(testSecret, "aaaaaaaaaaaaaaab")
	for name, unit := range map[string]string{
		"near misses":          "s3cr3t/value&mor",
		"hits":                 testSecret,
		"escaped strings":      `"s3cr3t\/value\u0026more",`,
		"escaped near misses":  `"s3cr3t\/value\u0026mor",`,
		"backslashes":          `\\\\\\\"`,
		"repeated first bytes": "aaaaaaaaaaaaaaa",
	} {
		t.Run(name, func(t *testing.T) {
			in := []byte(strings.Repeat(unit, (1<<20)/len(unit)))
			start := time.Now()
			out := s.Bytes(in)
			assert.Less(t, time.Since(start), 3*time.Second, "scrubbing a megabyte of %q", unit)
			assert.NotContains(t, string(out), testSecret)
		})
	}
}

func TestSecretsConcurrentAdd(t *testing.T) {
	s := NewSecrets(testSecret)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range MaxRotating / 4 { // none is dropped
				tok := fmt.Sprintf("token-%d-%04d", i, j)
				s.Add(tok)
				assert.Equal(t, "x"+Marker, s.String("x"+tok), "a token is scrubbed once added")
			}
		})
	}
	wg.Wait()
}
