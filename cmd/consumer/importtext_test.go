package main

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A file read in Latin-1 is decoded to UTF-8, CSV and NDJSON alike. The
// input comes a byte a read.
func TestImportRowsLatin1(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, format, encoding, in string
		want                       []string // each row's broken, or its name when "name=…"
	}{
		{"CSV in Latin-1", "csv", encodingLatin1,
			"name,email,mobile,tagId,companyName\nLat\xe9 Caf\xe9,late@example.com,9876543210,t,\"Caf\xe9, Ltd\"\n",
			[]string{"name=Laté Café"}},
		{"NDJSON in Latin-1", "ndjson", encodingLatin1,
			"{\"name\":\"Lat\xe9 Caf\xe9\"}\n",
			[]string{"name=Laté Café"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := decodeInput(iotest.OneByteReader(strings.NewReader(tc.in)), tc.encoding)
			var rows rowReader
			if tc.format == "csv" {
				c, err := newCSVRows(in, "b")
				require.NoError(t, err)
				rows = c
			} else {
				rows = newNDJSONRows(in, "b")
			}
			var got []string
			for {
				row, err := rows.next()
				if errors.Is(err, io.EOF) {
					break
				}
				require.NoError(t, err)
				if row.broken != "" {
					got = append(got, row.broken)
					continue
				}
				var cmd struct{ Name string }
				require.NoError(t, json.Unmarshal(row.body, &cmd))
				got = append(got, "name="+cmd.Name)
			}
			assert.Equal(t, tc.want, got)
		})
	}
}
