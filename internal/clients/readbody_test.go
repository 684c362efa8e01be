package clients

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
)

// TestReadBodyReadsWhatReadAllReads: reading into a buffer of the announced
// length gives the bytes and the error io.ReadAll of a LimitReader gives,
// whether the body is as long as announced, shorter, longer, unknown or
// over the bound, and whatever the size of each read.
func TestReadBodyReadsWhatReadAllReads(t *testing.T) {
	const limit = 16
	body := []byte(`{"statuscode":"TXN"}`) // 20 bytes: over the limit
	cases := []struct {
		name      string
		data      []byte
		announced int64
		fail      error
	}{
		{"as announced", body[:10], 10, nil},
		{"empty", nil, 0, nil},
		{"shorter than announced", body[:5], 10, io.ErrUnexpectedEOF},
		{"longer than announced", body[:12], 10, nil},
		{"longer than announced, past the bound", body, 10, nil},
		{"unknown length", body[:12], -1, nil},
		{"announced over the bound", body, 20, nil},
		{"exactly the bound", body[:limit], limit, nil},
		{"an error midway", body[:8], 10, errors.New("connection reset")},
	}
	for _, c := range cases {
		for _, wrap := range []struct {
			name string
			r    func(io.Reader) io.Reader
		}{{"whole", func(r io.Reader) io.Reader { return r }}, {"byte by byte", iotest.OneByteReader}} {
			t.Run(c.name+", "+wrap.name, func(t *testing.T) {
				open := func() io.Reader {
					var r io.Reader = bytes.NewReader(c.data)
					if c.fail != nil {
						r = io.MultiReader(r, iotest.ErrReader(c.fail))
					}
					return wrap.r(r)
				}
				want, wantErr := io.ReadAll(io.LimitReader(open(), limit+1))
				got, err := readBody(open(), c.announced, limit)
				assert.Equal(t, string(want), string(got))
				assert.Equal(t, wantErr, err)
			})
		}
	}
}
