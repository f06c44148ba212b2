//go:build sandboxd_crashpoints

package daemon

import (
	"os"
	"syscall"
)

// crashPoint kills the daemon with SIGKILL, leaving everything as a real
// crash would, when SANDBOXD_CRASH_AT names this point. Only test builds
// (-tags sandboxd_crashpoints) contain it.
func crashPoint(name string) {
	if os.Getenv("SANDBOXD_CRASH_AT") == name {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}
