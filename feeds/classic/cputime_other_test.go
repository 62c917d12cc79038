//go:build !unix

package classic

func processCPU() float64 { return 0 }
