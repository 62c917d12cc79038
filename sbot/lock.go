package sbot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrRepoLocked is returned when another daemon holds the repo.
var ErrRepoLocked = errors.New("repo is in use by another sbot")

// repoLock is an exclusive advisory lock (flock) on REPO/lock holding the
// owner's pid. The kernel drops it when the process dies, so a kill -9
// leaves no stale lock behind.
type repoLock struct{ f *os.File }

func lockRepo(repo string) (*repoLock, error) {
	path := filepath.Join(repo, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		pid := strings.TrimSpace(string(b))
		if errors.Is(err, syscall.EWOULDBLOCK) {
			if _, perr := strconv.Atoi(pid); perr == nil {
				return nil, fmt.Errorf("open repo %s: %w (pid %s)", repo, ErrRepoLocked, pid)
			}
			return nil, fmt.Errorf("open repo %s: %w", repo, ErrRepoLocked)
		}
		return nil, fmt.Errorf("lock repo %s: %w", repo, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &repoLock{f: f}, nil
}

func (l *repoLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	return l.f.Close()
}
