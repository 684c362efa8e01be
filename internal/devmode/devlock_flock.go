//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package devmode

import (
	"os"
	"syscall"
)

// flockExclusive takes f's exclusive lock without waiting. The lock
// belongs to the open file: a second open of the same path, even in this
// process, does not get it.
func flockExclusive(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}
