package importer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// The text encodings of import files: a command is JSON, whose text is
// UTF-8. A file in UTF-8 is read as it is, and a row with bytes that are
// not UTF-8 is refused, naming where they are, rather than sent with
// U+FFFD in their place; a Latin-1 file is decoded to UTF-8 first.
const (
	encodingUTF8   = "utf-8"
	encodingLatin1 = "latin1"
)

// importEncoding returns the encoding an --encoding value names, case
// ignored: utf-8 (or utf8), or latin1 (or latin-1, iso-8859-1). ok is false
// for any other value.
func importEncoding(name string) (encoding string, ok bool) {
	switch strings.ToLower(name) {
	case "utf-8", "utf8":
		return encodingUTF8, true
	case "latin1", "latin-1", "iso-8859-1":
		return encodingLatin1, true
	}
	return "", false
}

// decodeInput returns in as UTF-8: as it is, or decoded from Latin-1
// (ISO-8859-1), in which each byte is the code point of its value.
func decodeInput(in io.Reader, encoding string) io.Reader {
	if encoding == encodingLatin1 {
		return charmap.ISO8859_1.NewDecoder().Reader(in)
	}
	return in
}

// badByte is where a sequence that is not UTF-8 starts: its first byte,
// its line and its byte column (both from 1).
type badByte struct {
	line, col int
	b         byte
}

// before reports whether b is before line:col.
func (b badByte) before(line, col int) bool {
	return b.line < line || b.line == line && b.col < col
}

// utf8Watch passes r's bytes on unchanged and notes where they are not
// UTF-8, in order: encoding/csv passes such bytes into its fields and
// says nothing, and its positions of the fields (FieldPos) locate the bad
// bytes in the field that holds them. Lines end at '\n', as encoding/csv
// counts them.
type utf8Watch struct {
	r         io.Reader
	line, col int // of the next byte to judge
	// held is the start of a sequence a read cut off, judged with the
	// next read's bytes (at most utf8.UTFMax-1 bytes).
	held    [utf8.UTFMax]byte
	nHeld   int
	scratch []byte
	bad     []badByte // not yet claimed, in order
}

func newUTF8Watch(r io.Reader) *utf8Watch { return &utf8Watch{r: r, line: 1, col: 1} }

func (w *utf8Watch) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	chunk := p[:n]
	if w.nHeld > 0 {
		w.scratch = append(append(w.scratch[:0], w.held[:w.nHeld]...), chunk...)
		chunk = w.scratch
		w.nHeld = 0
	}
	w.judge(chunk, err != nil)
	return n, err
}

// judge notes the bad sequences in b; unless final, an incomplete
// sequence at its end is held for the next read.
func (w *utf8Watch) judge(b []byte, final bool) {
	if utf8.Valid(b) {
		w.advance(b)
		return
	}
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			if !final && !utf8.FullRune(b[i:]) {
				w.nHeld = copy(w.held[:], b[i:])
				return
			}
			w.bad = append(w.bad, badByte{line: w.line, col: w.col, b: b[i]})
		}
		w.advance(b[i : i+size])
		i += size
	}
}

func (w *utf8Watch) advance(b []byte) {
	if last := bytes.LastIndexByte(b, '\n'); last >= 0 {
		w.line += bytes.Count(b, []byte{'\n'})
		w.col = len(b) - last
		return
	}
	w.col += len(b)
}

// forget drops the bad bytes noted before line:col.
func (w *utf8Watch) forget(line, col int) {
	i := 0
	for i < len(w.bad) && w.bad[i].before(line, col) {
		i++
	}
	w.bad = w.bad[i:]
}

// firstFrom returns the first bad byte at or after line:col, forgetting
// those before it.
func (w *utf8Watch) firstFrom(line, col int) (badByte, bool) {
	w.forget(line, col)
	if len(w.bad) == 0 {
		return badByte{}, false
	}
	return w.bad[0], true
}

// notUTF8 is the message of a row with bytes that are not UTF-8: where
// each field (or, where none can be named, the line) has its first.
type notUTF8 []string

func (n *notUTF8) add(field string, b badByte) {
	where := fmt.Sprintf("the byte 0x%02X at line %d, byte column %d", b.b, b.line, b.col)
	if field != "" {
		where = field + " has " + where
	}
	*n = append(*n, where)
}

func (n notUTF8) String() string {
	return "not UTF-8 text: " + strings.Join(n, "; ") + "; if the file is Latin-1 (ISO-8859-1), import it with --encoding latin1"
}

// ndjsonNotUTF8 returns where the bytes of an NDJSON line that are not
// UTF-8 are, each with the field holding it (see jsonFieldAt), its first
// in each field; body is the line's object, starting start bytes into
// line.
func ndjsonNotUTF8(number int, line, body []byte, start int) notUTF8 {
	var where notUTF8
	seen := map[string]bool{}
	for i := 0; i < len(line); {
		r, size := utf8.DecodeRune(line[i:])
		if r == utf8.RuneError && size == 1 {
			field := ""
			if i >= start && i < start+len(body) {
				field = jsonFieldAt(body, i-start)
			}
			if !seen[field] {
				seen[field] = true
				where.add(field, badByte{line: number, col: i + 1, b: line[i]})
			}
		}
		i += size
	}
	return where
}

// jsonFieldAt returns the path of the member of the JSON object body
// whose name or value holds the byte at offset off ("name",
// "metadata.crmId"), or "" when body is not an object that holds it.
func jsonFieldAt(body []byte, off int) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return ""
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		name, _ := tok.(string)
		if int(dec.InputOffset()) > off {
			return name
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return ""
		}
		end := int(dec.InputOffset())
		if off >= end {
			continue
		}
		if inner := jsonFieldAt(value, off-(end-len(value))); inner != "" {
			return name + "." + inner
		}
		return name
	}
	return ""
}
