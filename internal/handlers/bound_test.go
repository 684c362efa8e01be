package handlers

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// boundUpstreamByEncoding is boundUpstream as it was before it learned to
// keep a map that is within bounds without encoding it: every value
// encoded and measured.
func boundUpstreamByEncoding(up map[string]any) map[string]any {
	const maxKeys, maxValue = 64, 1 << 10
	if len(up) == 0 {
		return up
	}
	out := make(map[string]any, min(len(up), maxKeys))
	dropped := 0
	for _, k := range sortedKeys(up) {
		v := up[k]
		enc, err := json.Marshal(v)
		if len(out) >= maxKeys || len(k) > maxValue || err != nil || len(enc) > maxValue {
			dropped++
			continue
		}
		out[k] = v
	}
	if dropped > 0 {
		out["droppedIdentifiers"] = dropped
	}
	return out
}

// TestBoundUpstreamKeepsWhatEncodingKeeps: the shortcut for identifiers
// within bounds keeps and drops exactly what measuring each encoding does.
func TestBoundUpstreamKeepsWhatEncodingKeeps(t *testing.T) {
	many := map[string]any{}
	for i := range 70 {
		many[strings.Repeat("k", i+1)] = "v"
	}
	cases := map[string]map[string]any{
		"instantpay's":             {"contactId": "65a1b2c3d4e5f6a7b8c9d0e1", "userId": json.Number("189590"), "ipayUuid": "h0689cabc1234", "environment": "LIVE"},
		"170 escaped bytes":        {"a": strings.Repeat("\x01", 170)},
		"171 escaped bytes":        {"a": strings.Repeat("\x01", 171)},
		"1022 plain bytes":         {"a": strings.Repeat("x", 1022)},
		"1023 plain bytes":         {"a": strings.Repeat("x", 1023)},
		"a long key":               {strings.Repeat("k", 1025): "v"},
		"a number with exponent":   {"n": json.Number("1e3")},
		"not a number":             {"n": json.Number("1e")},
		"a leading zero":           {"n": json.Number("0123")},
		"an empty number":          {"n": json.Number("")},
		"a negative number":        {"n": json.Number("-42")},
		"a bool and a float":       {"b": true, "f": 1.5},
		"a nested object":          {"o": map[string]any{"x": 1}},
		"more than 64":             many,
		"an unencodable value":     {"c": make(chan int)},
		"angle brackets (escaped)": {"h": strings.Repeat("<", 200)},
	}
	for name, up := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, boundUpstreamByEncoding(up), boundUpstream(up))
		})
	}
}
