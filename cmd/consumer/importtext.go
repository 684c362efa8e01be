package main

import (
	"io"
	"strings"

	"golang.org/x/text/encoding/charmap"
)

// The text encodings of import files: a command is JSON, whose text is
// UTF-8. A file in UTF-8 is read as it is; a Latin-1 file is decoded to
// UTF-8 first.
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
