package main

import (
	"fmt"
	"io"
	"time"
)

// progress prints a line to w at most every interval, so long inputs show
// they are moving; short ones print nothing.
type progress struct {
	w        io.Writer
	what     string
	interval time.Duration
	start    time.Time
	last     time.Time
	shown    bool
}

func newProgress(w io.Writer, what string, interval time.Duration) *progress {
	now := time.Now()
	return &progress{w: w, what: what, interval: interval, start: now, last: now}
}

func (p *progress) update(read, stored int) {
	if time.Since(p.last) < p.interval {
		return
	}
	p.last = time.Now()
	p.shown = true
	el := time.Since(p.start).Seconds()
	fmt.Fprintf(p.w, "%s: %d messages read, %d stored (%.0f msgs/s)\n", p.what, read, stored, float64(read)/el)
}

func (p *progress) done(read, stored int) {
	if p.shown {
		el := time.Since(p.start).Seconds()
		fmt.Fprintf(p.w, "%s: finished: %d messages read, %d stored in %.1fs\n", p.what, read, stored, el)
	}
}
