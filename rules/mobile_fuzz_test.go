package rules

import (
	"regexp"
	"testing"
)

// mobilePattern is the contract's mobile rule as a regular expression, the
// form isMobile was checked by before it was written by hand.
var mobilePattern = regexp.MustCompile(`^\+?[0-9]{10,15}$`)

// FuzzIsMobile holds the hand check equal to the regular expression for
// any input (go test -run '^$' -fuzz FuzzIsMobile ./rules).
func FuzzIsMobile(f *testing.F) {
	for _, s := range []string{
		"", "+", "++919876543210", "9876543210", "+9876543210", "987654321", "+987654321",
		"123456789012345", "+123456789012345", "1234567890123456", "+1234567890123456",
		"98765 43210", "9876543210\n", "\n9876543210", "+91-9876543210", "٩٨٧٦٥٤٣٢١٠٩",
		"98765432１0", "+919876543210+", "0000000000", "9876543210x", "x9876543210",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isMobile(s), mobilePattern.MatchString(s); got != want {
			t.Errorf("isMobile(%q) = %v, the regular expression says %v", s, got, want)
		}
	})
}

// BenchmarkMobileRule compares the hand check with the regular expression.
func BenchmarkMobileRule(b *testing.B) {
	b.Run("hand", func(b *testing.B) {
		for b.Loop() {
			if !isMobile("+919876543210") {
				b.Fatal("no match")
			}
		}
	})
	b.Run("regexp", func(b *testing.B) {
		for b.Loop() {
			if !mobilePattern.MatchString("+919876543210") {
				b.Fatal("no match")
			}
		}
	})
}
