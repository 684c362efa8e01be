package record

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/rules"
)

// ContentFingerprint returns the fingerprint the service keeps of a
// command body's content (see Fingerprint): two bodies with one
// fingerprint ask for the same contact, whatever their member order, white
// space, commandId or metadata. A body that does not decode has a
// fingerprint of its bytes.
func ContentFingerprint(body []byte) string {
	cmd, err := contact.DecodeCommand(body)
	var derr *contact.DecodeError
	switch {
	case errors.As(err, &derr) && derr.Reason == contact.ReasonMalformed:
		return RawFingerprint("malformed", body)
	case derr != nil:
		var compact bytes.Buffer
		if json.Compact(&compact, body) != nil {
			return RawFingerprint("invalid", body)
		}
		return RawFingerprint("invalid", compact.Bytes())
	}
	return Fingerprint(cmd)
}

// Fingerprint digests the content of a decoded command: the fields that
// decide what is created (provider as the command names it, name, email,
// mobile, tagId, companyName and the pik object, its members in any order
// and white space) and not commandId or metadata, which only correlate.
// Two commands with one fingerprint ask for the same contact. The command
// is normalised first (rules.Normalize): "+91 98765 10011" and
// "+919876510011", "Pik" and "pik" are the same content, and a command
// already normalised has the fingerprint it always had.
func Fingerprint(cmd contact.Command) string {
	cmd, _ = rules.Normalize(cmd)
	// The fields are framed into one buffer (on the stack for a typical
	// command) and digested at once: the same bytes, and so the same
	// digest, as writing them one by one.
	var arr [512]byte
	buf := arr[:0]
	for _, f := range [...]string{cmd.Provider, cmd.Name, cmd.Email, cmd.Mobile, cmd.TagID, cmd.CompanyName} {
		buf = appendField(buf, f)
	}
	if len(cmd.PIK) > 0 {
		keys := make([]string, 0, len(cmd.PIK))
		for k := range cmd.PIK {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			buf = appendField(buf, k)
			buf = appendField(buf, canonicalJSON(cmd.PIK[k]))
		}
	}
	return digest(buf)
}

// RawFingerprint digests bytes that did not decode into a command, named
// by kind: "malformed" for a malformed body, "invalid" for a body with
// fields of the wrong type (compacted, as ContentFingerprint does), or
// "generation" for a Contact-Replay-Of value that cannot name one.
func RawFingerprint(kind string, body []byte) string {
	buf := appendField(nil, kind)
	return digest(appendField(buf, body))
}

// appendField appends b framed by its length (8 bytes, big-endian).
func appendField[T string | []byte](buf []byte, b T) []byte {
	buf = binary.BigEndian.AppendUint64(buf, uint64(len(b)))
	return append(buf, b...)
}

// digest returns "v1:" and the hex of the first 16 bytes of buf's SHA-256.
func digest(buf []byte) string {
	sum := sha256.Sum256(buf)
	var out [3 + 32]byte
	copy(out[:], "v1:")
	hex.Encode(out[3:], sum[:16])
	return string(out[:])
}

// canonicalJSON returns v with its objects' members sorted and no white
// space (v as it is when it does not decode).
func canonicalJSON(v json.RawMessage) []byte {
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var x any
	if dec.Decode(&x) != nil {
		return v
	}
	out, err := json.Marshal(x)
	if err != nil {
		return v
	}
	return out
}
