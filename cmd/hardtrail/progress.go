package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/hardtrail/hardtrail/agent/fleet"
)

// progress shows a fleet capture's progress on a terminal (targets done and failed, rate, ETA)
// and a one-line summary when stderr is not a terminal.
type progress struct {
	w           io.Writer
	tty         bool
	total       int
	done_, fail int
	start       time.Time
	shown       bool
}

func newProgress(w io.Writer, named, all int) *progress {
	total := named
	if total == 0 {
		total = all
	}
	p := &progress{w: w, total: total, start: time.Now()}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	return p
}

func (p *progress) done(r fleet.Result) {
	p.done_++
	if r.Err != nil {
		p.fail++
	}
}

// draw writes the bar on a terminal, for fleets where it helps.
func (p *progress) draw() {
	if !p.tty || p.total < 2 {
		return
	}
	el := time.Since(p.start)
	rate := float64(p.done_) / el.Seconds()
	eta := "?"
	if rate > 0 {
		eta = time.Duration(float64(p.total-p.done_) / rate * float64(time.Second)).Round(time.Second).String()
	}
	const width = 30
	filled := width * p.done_ / p.total
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = '.'
		if i < filled {
			bar[i] = '#'
		}
	}
	fmt.Fprintf(p.w, "\r[%s] %d/%d done, %d failed, %.1f targets/s, ETA %s ", bar, p.done_, p.total, p.fail, rate, eta)
	p.shown = true
}

func (p *progress) clear() {
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}

func (p *progress) finish(results []fleet.Result) {
	p.clear()
	if p.total < 2 && p.fail == 0 {
		return
	}
	el := time.Since(p.start)
	fmt.Fprintf(p.w, "%s: %d captured, %d failed in %s (%.1f targets/s)\n",
		plural(len(results), "target", "targets"), len(results)-p.fail, p.fail, el.Round(time.Millisecond), float64(len(results))/el.Seconds())
}
