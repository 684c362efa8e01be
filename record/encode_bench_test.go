package record

import (
	"testing"
	"time"
)

// encodeSample is a record as a created command's outcome leaves it: one
// generation, decided.
func encodeSample() Record {
	return Record{CommandID: "c-1", Fingerprint: "sha256:5d41402abc4b2a76b9719d911017c592", FirstUsed: time.Date(2026, 12, 7, 21, 0, 0, 0, time.UTC),
		Generations: map[string]*Generation{"": {Attempts: 1, Outcome: []byte(`{"id":"e1","type":"contact.created"}`), Provider: "instantpay", Order: 1, Sequence: 7}}}
}

// BenchmarkEncode measures the encoding of a record, written twice per
// command (the claim and the outcome).
func BenchmarkEncode(b *testing.B) {
	rec := encodeSample()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(&rec, ""); err != nil {
			b.Fatal(err)
		}
	}
}
