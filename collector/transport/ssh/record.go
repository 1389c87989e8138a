package ssh

import (
	"bytes"
	"strings"
	"sync"

	"github.com/hardtrail/hardtrail/collector/transport"
)

// A glob read's step writes, inside its stdout frame, one record per file it matched:
//
//	\nRECORD F PATH\0              (PATH is any bytes but NUL, as the target's shell spelt it)
//	STAT LINE\nCONTENT             (only when the file could be read)
//	\nRECORD E STATUS CODE\n       (STATUS as a file step's: 0 read, 1 not found, 2 permission denied)
//
// RECORD is the session's record marker, which carries the same random nonce as the frame marker:
// no process on the target knows it, so no file's content can end a record or forge one.

// maxGlobFiles bounds the files one glob read reads; the target stops expanding past it.
const maxGlobFiles = 4096

// record is one file of a glob read.
type record struct {
	path   string
	body   *transport.CapWriter // the stat line, then the content
	done   bool
	fields []string // the end line's fields: status, code
}

// recordReader splits a glob read's section into records. It is an io.Writer that never fails;
// memory stays bounded by the records' caps, maxGlobFiles, and one marker line.
type recordReader struct {
	marker []byte // "\n" + the record marker
	max    int64  // cap of one record's body
	limit  int    // records kept at most

	mu       sync.Mutex
	buf      []byte
	open     *record // the record whose body is being written, nil between bodies
	records  []*record
	overflow bool // more records came than limit
}

func newRecordReader(marker string, max int64, limit int) *recordReader {
	return &recordReader{marker: []byte("\n" + marker), max: max, limit: limit}
}

// recordMarker derives a session's record marker from its frame marker: distinct, so a record
// never ends its step's frame, and as secret.
func recordMarker(frame string) string { return strings.Replace(frame, "HT-", "HR-", 1) }

// Write implements io.Writer; it always accepts all of p.
func (r *recordReader) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	for r.step() {
	}
	return len(p), nil
}

// step consumes what it can from buf and reports whether to go on.
func (r *recordReader) step() bool {
	i := bytes.Index(r.buf, r.marker)
	if i < 0 {
		// Keep a tail that may be the start of a marker.
		if n := len(r.buf) - (len(r.marker) - 1); n > 0 {
			if r.open != nil {
				r.open.body.Write(r.buf[:n])
			}
			r.buf = append(r.buf[:0], r.buf[n:]...)
		}
		return false
	}
	if r.open != nil {
		r.open.body.Write(r.buf[:i])
		r.open = nil
	}
	rest := r.buf[i+len(r.marker):]
	if len(rest) < 3 {
		r.buf = append(r.buf[:0], r.buf[i:]...)
		return false
	}
	var stop byte
	switch string(rest[:3]) {
	case " F ":
		stop = 0
	case " E ":
		stop = '\n'
	default:
		r.buf = append(r.buf[:0], rest...) // not a record line
		return true
	}
	j := bytes.IndexByte(rest[3:], stop)
	if j < 0 {
		if len(rest) > maxFrameLine {
			r.buf = append(r.buf[:0], rest...) // too long to be ours
			return true
		}
		r.buf = append(r.buf[:0], r.buf[i:]...)
		return false
	}
	head := string(rest[3 : 3+j])
	r.buf = append(r.buf[:0], rest[3+j+1:]...)
	if stop == 0 {
		r.begin(head)
	} else {
		r.end(strings.Fields(head))
	}
	return true
}

func (r *recordReader) begin(path string) {
	if len(r.records) == r.limit {
		r.overflow = true
		return
	}
	rec := &record{path: path, body: &transport.CapWriter{Max: r.max}}
	r.records = append(r.records, rec)
	r.open = rec
}

func (r *recordReader) end(fields []string) {
	if len(r.records) == 0 {
		return
	}
	if rec := r.records[len(r.records)-1]; !rec.done {
		rec.done, rec.fields = true, fields
	}
}

// result returns the records so far, and whether more came than it keeps.
func (r *recordReader) result() ([]record, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]record, len(r.records))
	for i, rec := range r.records {
		out[i] = *rec
	}
	return out, r.overflow
}
