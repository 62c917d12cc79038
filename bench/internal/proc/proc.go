// Package proc runs the real sbot daemon binary for the whole-system
// benchmarks under bench/ and reads process figures (RSS, CPU time) from
// /proc. It only ever makes the daemon listen on 127.0.0.1, and it never
// touches a repo it was not given.
package proc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cask-ssb/cask/sbot/client"
)

// BuildSbot builds cmd/sbot into dir and returns the binary's path.
func BuildSbot(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "sbot")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/cask-ssb/cask/cmd/sbot")
	cmd.Dir = moduleDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build cmd/sbot: %w\n%s", err, out)
	}
	return bin, nil
}

// moduleDir is the module root when run from source (go run), else ".".
func moduleDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "."
	}
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "."
	}
	return root
}

// Daemon is a running `sbot serve` process.
type Daemon struct {
	Repo string
	ID   string // @...=.ed25519
	Addr string // multiserver address on 127.0.0.1 ("" with listen off)
	Pid  int

	cmd    *exec.Cmd
	stderr *lockedBuffer
	exited chan error
}

// StartDaemon runs `bin serve --repo repo --listen 127.0.0.1:0` (or with
// TCP off when tcp is false) and waits until it answers status over its
// unix socket. logLevel is the daemon's --log-level (its log is kept for
// Stderr); extra are more serve flags.
func StartDaemon(ctx context.Context, bin, repo string, tcp bool, logLevel string, extra ...string) (*Daemon, error) {
	listen := "127.0.0.1:0"
	if !tcp {
		listen = "off"
	}
	cmd := exec.Command(bin, append([]string{"serve", "--repo", repo, "--listen", listen, "--log-level", logLevel}, extra...)...)
	d := &Daemon{Repo: repo, cmd: cmd, stderr: &lockedBuffer{}, exited: make(chan error, 1)}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s serve: %w", bin, err)
	}
	d.Pid = cmd.Process.Pid
	go func() { d.exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := d.status(ctx)
		if err == nil {
			d.ID = st.ID
			for _, l := range st.Listen {
				if strings.HasPrefix(l, "net:") {
					d.Addr = l
				}
			}
			if tcp && !strings.HasPrefix(d.Addr, "net:127.0.0.1:") {
				d.Stop()
				return nil, fmt.Errorf("daemon listens on %v, want net:127.0.0.1:…", st.Listen)
			}
			return d, nil
		}
		if time.Now().After(deadline) {
			d.Stop()
			return nil, fmt.Errorf("daemon did not answer status within 30 s: %w; stderr: %s", err, d.stderr.String())
		}
		select {
		case err := <-d.exited:
			d.exited <- err
			return nil, fmt.Errorf("daemon exited: %v; stderr: %s", err, d.stderr.String())
		case <-ctx.Done():
			d.Stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

type status struct {
	ID     string   `json:"id"`
	Listen []string `json:"listen"`
}

func (d *Daemon) status(ctx context.Context) (status, error) {
	var st status
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := client.DialRepo(ctx, d.Repo)
	if err != nil {
		return st, err
	}
	defer c.Close()
	raw, err := c.Status(ctx)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, fmt.Errorf("status %q: %w", raw, err)
	}
	return st, nil
}

// Stderr returns what the daemon logged.
func (d *Daemon) Stderr() string { return d.stderr.String() }

// Stop sends SIGTERM and waits (SIGKILL after 10 s).
func (d *Daemon) Stop() error {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		d.exited <- err
		return err
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		err := <-d.exited
		d.exited <- err
		return errors.New("daemon did not stop within 10 s of SIGTERM; killed")
	}
}

// Status reads the named fields ("VmRSS", "VmHWM", …) of /proc/PID/status
// in bytes.
func Status(pid int, fields ...string) (map[string]int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(string(data), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		for _, f := range fields {
			if name != f {
				continue
			}
			v := strings.Fields(rest)
			if len(v) != 2 || v[1] != "kB" {
				return nil, fmt.Errorf("pid %d: unexpected %s line %q", pid, f, line)
			}
			kb, err := strconv.ParseInt(v[0], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("pid %d: %s: %w", pid, f, err)
			}
			out[f] = kb << 10
		}
	}
	for _, f := range fields {
		if _, ok := out[f]; !ok {
			return nil, fmt.Errorf("pid %d: no %s in /proc/%d/status", pid, f, pid)
		}
	}
	return out, nil
}

// CPUTime is the user+system CPU time a process has used so far.
func CPUTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces; fields after ')' are
	// plain. utime and stime are fields 14 and 15, in clock ticks.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("pid %d: malformed stat", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("pid %d: short stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("pid %d: stat times: %w", pid, errors.Join(err1, err2))
	}
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticks, nil
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 1<<20 {
		b.buf.Reset()
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
