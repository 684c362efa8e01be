package contact

// MaxNestingDepth is the deepest nesting of objects and arrays a command
// body may have: the body's own object is level 1, so {"pik":{"a":{}}} is 3
// levels deep. A deeper body is malformed. Anything within it is well
// within what encoding/json reads and writes (10,000 levels), also once it
// is carried inside an event, two levels further down.
const MaxNestingDepth = 32

// nestingDepth returns how deep the objects and arrays of b nest, counting
// up to max+1 and stopping there. It reads the bytes once, skipping
// brackets inside strings, and does not check that b is JSON: it runs
// before the body is decoded, so that decoding never meets deep nesting.
func nestingDepth(b []byte, max int) int {
	depth, deepest := 0, 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++ // the escaped byte cannot end the string
				}
			}
		case '{', '[':
			depth++
			if depth > deepest {
				if deepest = depth; deepest > max {
					return deepest
				}
			}
		case '}', ']':
			depth--
		}
	}
	return deepest
}
