package importer

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

// Bytes that are not UTF-8 make their row invalid, its message naming
// each field that holds some, with the line and byte column of its first;
// a file read in Latin-1 is decoded instead. The input also comes a byte
// a read, so that a sequence is cut between two reads.
func TestImportRowsNotUTF8(t *testing.T) {
	t.Parallel()
	const hint = "; if the file is Latin-1 (ISO-8859-1), import it with --encoding latin1"
	for _, tc := range []struct {
		name, format, encoding, in string
		want                       []string // each row's broken, or its name when "name=…"
	}{
		{"CSV, a field of its own and a quoted one", "csv", encodingUTF8,
			"name,email,mobile,tagId,companyName\nJane Doe,jane@example.com,9876543210,t,Acme\nLat\xe9 Caf\xe9,late@example.com,9876543210,t,\"Caf\xe9, Ltd\"\n",
			[]string{"name=Jane Doe", "not UTF-8 text: name has the byte 0xE9 at line 3, byte column 4; companyName has the byte 0xE9 at line 3, byte column 45" + hint}},
		{"CSV, a quoted field over two lines, CRLF", "csv", encodingUTF8,
			"name,email,mobile,tagId,companyName\r\nJane Doe,jane@example.com,9876543210,t,\"Acme\r\nCaf\xe9\"\r\nRavi,ravi@example.com,9876543210,t,R\xfcdiger\r\n",
			[]string{"not UTF-8 text: companyName has the byte 0xE9 at line 3, byte column 4" + hint, "not UTF-8 text: companyName has the byte 0xFC at line 4, byte column 37" + hint}},
		{"CSV, a metadata column, a broken row before", "csv", encodingUTF8,
			"name,email,mobile,tagId,metadata.city\nA\xe9,b\nJane,jane@example.com,9876543210,t,K\xf6ln\n",
			[]string{"the row has 2 fields, the header 5", "not UTF-8 text: metadata.city has the byte 0xF6 at line 3, byte column 37" + hint}},
		{"CSV in Latin-1", "csv", encodingLatin1,
			"name,email,mobile,tagId,companyName\nLat\xe9 Caf\xe9,late@example.com,9876543210,t,\"Caf\xe9, Ltd\"\n",
			[]string{"name=Laté Café"}},
		{"NDJSON, a nested field, after a byte-order mark and space", "ndjson", encodingUTF8,
			"\ufeff  {\"name\":\"Lat\xe9\",\"metadata\":{\"crm\":\"x\",\"city\":\"K\xf6ln\"}}\n{\"name\":\"Jane\"}\n",
			[]string{"not UTF-8 text: name has the byte 0xE9 at line 1, byte column 18; metadata.city has the byte 0xF6 at line 1, byte column 52" + hint, "name=Jane"}},
		{"NDJSON, not an object", "ndjson", encodingUTF8,
			"caf\xe9\n",
			[]string{"not UTF-8 text: the byte 0xE9 at line 1, byte column 4" + hint}},
		{"NDJSON in Latin-1", "ndjson", encodingLatin1,
			"{\"name\":\"Lat\xe9 Caf\xe9\"}\n",
			[]string{"name=Laté Café"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := decodeInput(iotest.OneByteReader(strings.NewReader(tc.in)), tc.encoding)
			var rows rowReader
			if tc.format == "csv" {
				c, err := newCSVRows(in, "b", columnOptions{})
				require.NoError(t, err)
				rows = c
			} else {
				rows = newNDJSONRows(in, "b", "")
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

// A CSV row that is not UTF-8 cannot be sent as it is: its command would
// carry U+FFFD in place of the bytes. An NDJSON line can: the service
// refuses it as malformed.
func TestImportRowsNotUTF8AreNotSentAsTheyAre(t *testing.T) {
	t.Parallel()
	c, err := newCSVRows(strings.NewReader("name,email,mobile,tagId\nLat\xe9,late@example.com,9876543210,t\n"), "b", columnOptions{})
	require.NoError(t, err)
	row, err := c.next()
	require.NoError(t, err)
	assert.True(t, row.unreadable, "a CSV row is not sent, even with --send-invalid")
	assert.Empty(t, row.body)
	row, err = newNDJSONRows(strings.NewReader("{\"name\":\"Lat\xe9\"}\n"), "b", "").next()
	require.NoError(t, err)
	assert.False(t, row.unreadable)
	assert.Equal(t, "{\"name\":\"Lat\xe9\"}", string(row.body), "an NDJSON line is sent as it is, with --send-invalid")
}
