//go:build unix

package classic

import "syscall"

// processCPU returns the user+system CPU time of the process in seconds.
// Benchmarks report CPU per message, which stays meaningful when other
// work competes for the cores.
func processCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}
