package events

// nestingDepth is contact's, copied for commandFits: whether a command
// carried inside an event nests within MaxNestingDepth. contact keeps it
// unexported so that its public surface is the wire alone.

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
