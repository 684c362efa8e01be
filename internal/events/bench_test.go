package events

import "testing"

// BenchmarkDecodeCommand measures decoding a typical command body.
func BenchmarkDecodeCommand(b *testing.B) {
	body := []byte(validBody)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeCommand(body); err != nil {
			b.Fatal(err)
		}
	}
}
