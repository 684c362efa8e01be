package record

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"testing"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/rules"
)

// fingerprintStreamed is Fingerprint as it was written before its fields
// were framed into one buffer: each field written to the hash in turn
// (commands without pik).
func fingerprintStreamed(cmd contact.Command) string {
	cmd, _ = rules.Normalize(cmd)
	h := sha256.New()
	for _, f := range [...]string{cmd.Provider, cmd.Name, cmd.Email, cmd.Mobile, cmd.TagID, cmd.CompanyName} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return "v1:" + hex.EncodeToString(h.Sum(nil)[:16])
}

// FuzzFingerprintAndKey holds the fingerprint and the key built in place
// equal to their streamed and concatenated forms.
func FuzzFingerprintAndKey(f *testing.F) {
	f.Add("instantpay", "Jane Doe", "jane@example.com", "+91 98765 10011", "65a1b2c3d4e5f6a7b8c9d0e1", "", "crm-001")
	f.Add("Pik", "", "", "", "", "ACME", "")
	f.Add("x", string(make([]byte, 600)), "é", "1", "2", "3", string(make([]byte, 256)))
	f.Add("", "", "", "", "", "", string(make([]byte, 257)))
	f.Fuzz(func(t *testing.T, provider, name, email, mobile, tagID, company, commandID string) {
		cmd := contact.Command{Provider: provider, Name: name, Email: email, Mobile: mobile, TagID: tagID, CompanyName: company}
		if got, want := Fingerprint(cmd), fingerprintStreamed(cmd); got != want {
			t.Errorf("Fingerprint = %s, streamed %s", got, want)
		}
		if len(commandID) <= MaxPlainKey {
			if got, want := Key(commandID), "c."+base64.RawURLEncoding.EncodeToString([]byte(commandID)); got != want {
				t.Errorf("Key(%q) = %s, want %s", commandID, got, want)
			}
		}
	})
}
