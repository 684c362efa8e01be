package importer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
)

// readCommands reads every row of a CSV with co into commands.
func readCommands(t *testing.T, file string, co columnOptions) ([]contact.Command, string) {
	t.Helper()
	c, err := newCSVRows(strings.NewReader(file), "b", co)
	require.NoError(t, err)
	var note bytes.Buffer
	c.noteColumns(&note)
	var cmds []contact.Command
	for {
		row, err := c.next()
		if errors.Is(err, io.EOF) {
			return cmds, note.String()
		}
		require.NoError(t, err)
		require.Empty(t, row.broken)
		var cmd contact.Command
		require.NoError(t, json.Unmarshal(row.body, &cmd))
		cmds = append(cmds, cmd)
	}
}

func TestImportColumnsOfACRMExport(t *testing.T) {
	t.Parallel()
	file := "Full Name,email,Mobile No,tagId,CRM Id,Owner,,metadata.source\n" +
		"Jane Doe,jane@example.com,+91 98765 10011,t,CRM-10395,Chen,x,fair\n" +
		"Ravi,ravi@example.com,9876510012,t,CRM-10396,,y,\n"
	maps := map[string]string{"Full Name": "name", "Mobile No": "mobile"}

	cmds, note := readCommands(t, file, columnOptions{maps: maps, provider: "pik"})
	require.Len(t, cmds, 2)
	assert.Equal(t, "Jane Doe", cmds[0].Name, "--map renames a header")
	assert.Equal(t, "+919876510011", cmds[0].Mobile, "a row's mobile is normalised")
	assert.Equal(t, "pik", cmds[0].Provider, "--provider for rows naming none")
	assert.Equal(t, map[string]string{"CRM Id": "CRM-10395", "Owner": "Chen", "source": "fair"}, cmds[0].Metadata,
		"unknown columns are kept as metadata under their header; the nameless column is left out")
	assert.Equal(t, map[string]string{"CRM Id": "CRM-10396"}, cmds[1].Metadata, "empty cells make no entry")
	assert.Equal(t, `import: columns the import does not know, kept as metadata under their names: "CRM Id", "Owner" (--ignore-unknown-columns leaves them out; --map "Header=field" maps one to a field)`+"\n"+
		`import: columns left out: ""`+"\n", note, "said once")

	cmds, note = readCommands(t, file, columnOptions{maps: maps, ignoreUnknown: true})
	assert.Equal(t, map[string]string{"source": "fair"}, cmds[0].Metadata, "--ignore-unknown-columns drops them; metadata.* columns stay")
	assert.Empty(t, cmds[0].Provider)
	assert.Contains(t, note, `columns left out: "CRM Id", "Owner", ""`)

	cmds, _ = readCommands(t, "name,email,mobile,tagId,provider\nJane,j@example.com,9876510011,t,Pik\nRavi,r@example.com,9876510012,t,\n", columnOptions{provider: "instantpay"})
	assert.Equal(t, "pik", cmds[0].Provider, "a row's own provider, normalised, wins")
	assert.Equal(t, "instantpay", cmds[1].Provider)
}

func TestImportColumnRefusals(t *testing.T) {
	t.Parallel()
	var many []string
	for i := range 33 {
		many = append(many, fmt.Sprintf("Extra %d", i))
	}
	for _, tc := range []struct {
		name, header string
		co           columnOptions
		want         []string
	}{
		{"more unknown columns than metadata holds", "name,email,mobile,tagId," + strings.Join(many, ","), columnOptions{},
			[]string{"33 columns for metadata, more than a command's metadata may hold (32)", `"Extra 0", "Extra 1"`, `"Extra 32"`, "--ignore-unknown-columns", `--map "Header=field"`}},
		{"a --map the header lacks", "name,email,mobile,tagId", columnOptions{maps: map[string]string{"Phone": "mobile"}},
			[]string{`--map names "Phone", which the header does not have`}},
		{"a mapped column twice", "name,email,mobile,tagId,Phone", columnOptions{maps: map[string]string{"Phone": "mobile"}},
			[]string{`the column "mobile" twice`}},
		{"a missing column says --map", "name,e-mail,mobile,tagId", columnOptions{},
			[]string{`has no column "email"`, `--map "Header=field"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newCSVRows(strings.NewReader(tc.header+"\n"), "b", tc.co)
			require.Error(t, err)
			for _, want := range tc.want {
				assert.Contains(t, err.Error(), want)
			}
		})
	}
	_, err := newCSVRows(strings.NewReader("name,email,mobile,tagId,"+strings.Join(many, ",")+"\n"), "b", columnOptions{ignoreUnknown: true})
	assert.NoError(t, err, "with --ignore-unknown-columns they are left out")
}

func TestImportNDJSONProvider(t *testing.T) {
	t.Parallel()
	rows := newNDJSONRows(strings.NewReader(`{"commandId":"c-1","name":"Jane"}`+"\n"+`{"commandId":"c-2","name":"Ravi","provider":"instantpay"}`+"\n"), "", "pik")
	for _, want := range []string{"pik", "instantpay"} {
		row, err := rows.next()
		require.NoError(t, err)
		var cmd contact.Command
		require.NoError(t, json.Unmarshal(row.body, &cmd))
		assert.Equal(t, want, cmd.Provider)
		assert.Equal(t, row.commandID, cmd.CommandID, "the commandId is kept")
	}
}
