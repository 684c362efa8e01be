package importer

import (
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestRepairFileRecordWithoutEnd: a repair file whose quote never closes
// ends the read at maxRecordBytes instead of reading to the end of the
// file.
func TestRepairFileRecordWithoutEnd(t *testing.T) {
	body := "failureId,commandId,email\nf-1,c-1,\"" + strings.Repeat("a", 16<<20)
	in := &countingReader{r: strings.NewReader(body)}
	_, _, err := readRepairFile(in)
	require.ErrorIs(t, err, errRecordTooLarge)
	assert.Less(t, in.n, 2*maxRecordBytes, "read %d bytes of a 16 MiB record", in.n)
}
