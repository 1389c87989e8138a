package ssh

import (
	"bytes"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxFrameLine bounds a marker line; anything longer is not ours.
const maxFrameLine = 4096

// section is what one step produced on one stream.
type section struct {
	data   io.Writer // where the step's bytes go (a transport.CapWriter)
	begun  time.Time
	ended  time.Time
	done   bool
	fields []string // the end line's fields after the index
}

// frameReader splits one stream of a session into the sections framed by marker. It is an
// io.Writer that never fails, so the session's copy never stalls; memory stays bounded by the
// sections' own caps plus one marker's length.
type frameReader struct {
	marker []byte
	end    []byte // "\n" + marker
	sink   func(i int) io.Writer
	// note is told of a P or X line inside section i: the command's process group ID when it
	// starts (kind 'P'), or its exit code when it exits (kind 'X').
	note     func(kind byte, i int, v int)
	mu       sync.Mutex
	buf      []byte
	cur      int // index of the open section, -1 when between sections
	sections map[int]*section
	hostname string
	finished bool   // the script's final Z line was seen
	halted   bool   // the client stopped the session: later end frames are not believed
	stray    []byte // the start of what came outside frames, for diagnostics
}

// maxStray bounds the unframed output kept for error messages.
const maxStray = 1024

func (f *frameReader) discard(p []byte) {
	if room := maxStray - len(f.stray); room > 0 {
		f.stray = append(f.stray, p[:min(room, len(p))]...)
	}
}

func newFrameReader(marker string, sink func(i int) io.Writer) *frameReader {
	return &frameReader{
		marker:   []byte(marker),
		end:      []byte("\n" + marker),
		sink:     sink,
		cur:      -1,
		sections: map[int]*section{},
	}
}

// Write implements io.Writer; it always accepts all of p.
func (f *frameReader) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buf = append(f.buf, p...)
	for f.step() {
	}
	return len(p), nil
}

// readChunk is how much ReadFrom asks of the stream at a time.
const readChunk = 8 << 10

// ReadFrom implements io.ReaderFrom, so that the session's copy of a stream reads straight into
// the frame buffer, a chunk at a time: no copy buffer of its own per stream, and no second copy
// of everything through buf. It returns at the stream's end, as io.Copy does.
func (f *frameReader) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	for {
		// Only this stream's copy changes buf, so its free tail can be read into unlocked.
		f.mu.Lock()
		if cap(f.buf)-len(f.buf) < readChunk {
			f.buf = slices.Grow(f.buf, readChunk)
		}
		free := f.buf[len(f.buf) : len(f.buf)+readChunk]
		f.mu.Unlock()
		m, err := r.Read(free)
		if m > 0 {
			f.mu.Lock()
			f.buf = f.buf[:len(f.buf)+m]
			for f.step() {
			}
			f.mu.Unlock()
			n += int64(m)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// step consumes what it can from buf and reports whether to go on.
func (f *frameReader) step() bool {
	if f.cur >= 0 {
		s := f.sections[f.cur]
		i := bytes.Index(f.buf, f.end)
		if i < 0 {
			// Keep a tail that may be the start of the end marker.
			if n := len(f.buf) - (len(f.end) - 1); n > 0 {
				s.data.Write(f.buf[:n])
				f.buf = append(f.buf[:0], f.buf[n:]...)
			}
			return false
		}
		s.data.Write(f.buf[:i])
		// A P or X line inside a section reports on its command and is not part of the output;
		// any other marker line ends the section.
		rest := f.buf[i+len(f.end):]
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 && len(rest) <= maxFrameLine {
			f.buf = append(f.buf[:0], f.buf[i:]...)
			return false
		}
		if nl >= 0 {
			if fields := strings.Fields(string(rest[:nl])); len(fields) == 3 && (fields[0] == "P" || fields[0] == "X") {
				f.buf = append(f.buf[:0], rest[nl+1:]...)
				idx, err1 := strconv.Atoi(fields[1])
				v, err2 := strconv.Atoi(fields[2])
				if err1 == nil && err2 == nil && idx == f.cur && f.note != nil && (fields[0] == "X" || v > 1) {
					f.note(fields[0][0], idx, v)
				}
				return true
			}
		}
		f.buf = append(f.buf[:0], f.buf[i+1:]...) // the newline before the marker is framing
		f.cur = -1
		return true
	}
	i := bytes.Index(f.buf, f.marker)
	if i < 0 {
		if n := len(f.buf) - (len(f.marker) - 1); n > 0 {
			f.discard(f.buf[:n])
			f.buf = append(f.buf[:0], f.buf[n:]...)
		}
		return false
	}
	f.discard(f.buf[:i])
	nl := bytes.IndexByte(f.buf[i:], '\n')
	if nl < 0 {
		if len(f.buf)-i > maxFrameLine {
			f.buf = append(f.buf[:0], f.buf[i+len(f.marker):]...)
			return true
		}
		f.buf = append(f.buf[:0], f.buf[i:]...)
		return false
	}
	line := string(f.buf[i+len(f.marker) : i+nl])
	f.buf = append(f.buf[:0], f.buf[i+nl+1:]...)
	f.handle(strings.Fields(line))
	return true
}

func (f *frameReader) handle(fields []string) {
	if len(fields) == 0 {
		return
	}
	now := time.Now()
	switch fields[0] {
	case "H":
		if len(fields) == 2 {
			f.hostname = fields[1]
		}
	case "Z":
		f.finished = f.finished || !f.halted
	case "B", "E":
		if len(fields) < 2 {
			return
		}
		idx, err := strconv.Atoi(fields[1])
		if err != nil || idx < 0 {
			return
		}
		s := f.sections[idx]
		if fields[0] == "B" {
			if s != nil {
				return // a step begins once
			}
			w := f.sink(idx)
			if w == nil {
				return // not a step of this script
			}
			f.sections[idx] = &section{data: w, begun: now}
			f.cur = idx
			return
		}
		if s == nil || s.done || f.halted {
			return
		}
		s.done, s.ended, s.fields = true, now, fields[2:]
	}
}

// halt makes later end frames count for nothing: once the client has stopped a session, a step
// that ends did not end by itself (the stop killed it).
func (f *frameReader) halt() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.halted = true
}

// result returns a copy of section i's state.
func (f *frameReader) result(i int) (section, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sections[i]
	if !ok {
		return section{}, false
	}
	return *s, true
}

// unframed returns the start of what came outside frames, and anything left in the buffer.
func (f *frameReader) unframed() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := append(append([]byte(nil), f.stray...), f.buf[:min(len(f.buf), maxStray)]...)
	return strings.TrimSpace(string(s))
}

func (f *frameReader) host() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hostname
}

func (f *frameReader) isFinished() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.finished
}
