package devmode

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// devLockName is the lock file 'consumer dev' keeps in its data folder
// while its embedded server uses it; it holds the process id.
const devLockName = "consumer-dev.lock"

// errDataDirInUse says another process holds a data folder's lock.
var errDataDirInUse = errors.New("data folder in use")

// lockDataDir locks dir for this process, so that two embedded JetStream
// servers never share one store, and writes the process id into the lock
// file for the next one to name. The lock is released by unlock, or by
// the system when the process ends; the file stays.
func lockDataDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, devLockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock data folder: %w", err)
	}
	if err := flockExclusive(f); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		who := "another process"
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
			who = fmt.Sprintf("process %d", pid)
		}
		return nil, fmt.Errorf("%w: %s is used by %s (another 'consumer dev'?), which holds %s: stop it, or give this one another --data-dir and --nats-port",
			errDataDirInUse, dir, who, path)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}
