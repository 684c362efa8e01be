package contact

// The walk of a command body's members, without reflection. It is
// internal/jsonscan's EachMember, copied so that this package depends on
// the standard library alone; the service's provider adapters use that
// one. The two are held to the same tests.

import (
	"bytes"
	"encoding/json"
)

// eachMember calls f with every member of obj, a valid JSON object (check
// it with json.Valid), in order: the key unescaped and the value's raw
// bytes, both slices of obj unless the key had escapes. It walks the bytes
// once, without building a map. Keys are taken as they are: where
// encoding/json would replace invalid UTF-8, eachMember does not (check
// utf8.Valid first if that matters). Compare keys with string(key) ==
// "...", which does not allocate.
func eachMember(obj []byte, f func(key, v []byte)) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return
	}
	i = skipSpace(obj, i+1)
	for i < len(obj) && obj[i] == '"' {
		end := stringEnd(obj, i)
		rawKey := obj[i:end]
		key := rawKey[1 : len(rawKey)-1]
		if bytes.IndexByte(rawKey, '\\') >= 0 {
			var s string
			_ = json.Unmarshal(rawKey, &s)
			key = []byte(s)
		}
		i = skipSpace(obj, end)
		i = skipSpace(obj, i+1) // past ':'
		vend := valueEnd(obj, i)
		f(key, obj[i:vend])
		i = skipSpace(obj, vend)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string starting at b[i].
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// valueEnd returns the index just past the value starting at b[i].
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for ; i < len(b); i++ { // a number, true, false or null
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return len(b)
}
