//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package devmode

import "os"

// flockExclusive does not lock where flock(2) is not available: the data
// folder is not protected there.
func flockExclusive(*os.File) error { return nil }
