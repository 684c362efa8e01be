//go:build !race

package record

import "testing"

// TestEncodeAllocations: a record is encoded in one allocation, its
// buffer (the generations' names are sorted in a stack array).
func TestEncodeAllocations(t *testing.T) {
	rec := encodeSample()
	rec.Generations["27a1e0c4-5b1e-5f0e-9a51-2d1c3e4f5a6b"] = &Generation{Attempts: 2, Order: 2}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := Encode(&rec, ""); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("encoding a record took %v allocations, want 1", allocs)
	}
}
