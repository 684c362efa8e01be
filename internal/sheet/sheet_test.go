package sheet

import (
	"bytes"
	"encoding/csv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGuard(t *testing.T) {
	for in, want := range map[string]string{
		"=HYPERLINK(\"http://x\",\"y\")": "'=HYPERLINK(\"http://x\",\"y\")",
		"+919876510011":                  "'+919876510011",
		"-1+2":                           "'-1+2",
		"@SUM(A1)":                       "'@SUM(A1)",
		"\t=1":                           "'\t=1",
		"\r=1":                           "'\r=1",
		"'=1":                            "''=1",
		"'quoted":                        "''quoted",
		"Jane Doe":                       "Jane Doe",
		"9876510011":                     "9876510011",
		"":                               "",
		"a=b":                            "a=b",
	} {
		assert.Equal(t, want, Guard(in), "Guard(%q)", in)
		assert.Equal(t, in, Unguard(Guard(in)), "Unguard(Guard(%q)) gives it back", in)
	}
	assert.Equal(t, "'hello", Unguard("'hello"), "an apostrophe a person wrote is kept")
	assert.Equal(t, "+91", Unguard("'+91"))
}

func TestWriterGuardsEveryCell(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b)
	rec := []string{"=1+1", "plain", "a,b", "-x"}
	require.NoError(t, w.Write(rec))
	w.Flush()
	require.NoError(t, w.Error())
	assert.Equal(t, []string{"=1+1", "plain", "a,b", "-x"}, rec, "the record is not changed")
	got, err := csv.NewReader(&b).Read()
	require.NoError(t, err)
	assert.Equal(t, []string{"'=1+1", "plain", "a,b", "'-x"}, got)
}
