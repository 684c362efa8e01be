package events

import (
	"testing"

	"github.com/contactrelay/contactrelay/contact"
)

// BenchmarkDecodeCommand measures decoding a typical command body.
func BenchmarkDecodeCommand(b *testing.B) {
	body := []byte(validBody)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := contact.DecodeCommand(body); err != nil {
			b.Fatal(err)
		}
	}
}
