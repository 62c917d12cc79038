//go:build !unix

package store

// dirLock is a no-op where flock is unavailable; Pebble's own LOCK file
// still keeps a second process out.
type dirLock struct{}

func lockDir(dir string) (*dirLock, error) { return &dirLock{}, nil }

func (l *dirLock) release() error { return nil }
