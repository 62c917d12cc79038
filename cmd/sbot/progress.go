package main

import (
	"fmt"
	"os"
	"time"
)

// progress prints a line to stderr at most every two seconds, so long
// inputs show they are moving; short ones print nothing.
type progress struct {
	what  string
	start time.Time
	last  time.Time
	shown bool
}

func newProgress(what string) *progress {
	now := time.Now()
	return &progress{what: what, start: now, last: now}
}

func (p *progress) update(read, done int) {
	if time.Since(p.last) < 2*time.Second {
		return
	}
	p.last = time.Now()
	p.shown = true
	el := time.Since(p.start).Seconds()
	fmt.Fprintf(os.Stderr, "%s: %d messages read, %d stored (%.0f msgs/s)\n", p.what, read, done, float64(read)/el)
}

func (p *progress) done(read, done int) {
	if p.shown {
		el := time.Since(p.start).Seconds()
		fmt.Fprintf(os.Stderr, "%s: finished: %d messages read, %d stored in %.1fs\n", p.what, read, done, el)
	}
}
