package daemon

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/crc32"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/common/expfmt"
)

// exposition is the text exposition of one State's hardtrail_ families, encoded once and
// served to every scrape of that State, with the same bytes as a deflate stream for the
// scrapes that accept gzip (Prometheus's do). The runtime's families, which change on every
// scrape, are encoded per scrape around it.
type exposition struct {
	state *State
	text  []byte

	deflateOnce sync.Once
	deflated    []byte // raw deflate blocks ending in a sync flush: no final block, byte-aligned
}

// newExposition encodes the families of s.
func newExposition(s *State) *exposition {
	var b bytes.Buffer
	writeText(&b, collect(s))
	return &exposition{state: s, text: bytes.Clone(b.Bytes())}
}

// deflate returns the text as raw deflate blocks that a stream can continue after,
// compressing it on the first call.
func (e *exposition) deflate() []byte {
	e.deflateOnce.Do(func() {
		var b bytes.Buffer
		fw, _ := flate.NewWriter(&b, flate.BestSpeed) // a valid level never fails
		fw.Write(e.text)
		fw.Flush() // ends on a byte boundary, without a final block
		e.deflated = b.Bytes()
	})
	return e.deflated
}

// exposition returns the exposition of s, encoding it when s is not the State of the
// previous call.
func (r *Registry) exposition(s *State) *exposition {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.expo == nil || r.expo.state != s {
		r.expo = newExposition(s)
	}
	return r.expo
}

// flateWriters are reused for the small runtime part of gzip answers.
var flateWriters = sync.Pool{New: func() any {
	fw, _ := flate.NewWriter(nil, flate.BestSpeed)
	return fw
}}

// serveMetrics answers a scrape in the text format from the cached exposition of the current
// State; any other format (protobuf) is answered by other, from Gather.
func (r *Registry) serveMetrics(other http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		format := expfmt.NegotiateAccept(req.Header, expfmt.DefaultAcceptedFormats()...)
		if format.FormatType() != expfmt.TypeTextPlain {
			other.ServeHTTP(w, req)
			return
		}
		e := r.exposition(r.state())
		// The runtime's families sort around ours: go_ before hardtrail_, process_ after.
		var before, after bytes.Buffer
		rt, err := r.runtime.Gather()
		if err != nil {
			// What could be gathered is served, as promhttp's ContinueOnError does.
			log.Error("serving metrics", "err", err)
		}
		enc := expfmt.NewEncoder(&before, format)
		encAfter := expfmt.NewEncoder(&after, format)
		for _, mf := range rt {
			var err error
			if mf.GetName() < "hardtrail_" {
				err = enc.Encode(mf)
			} else {
				err = encAfter.Encode(mf)
			}
			if err != nil {
				log.Error("serving metrics", "family", mf.GetName(), "err", err)
			}
		}
		h := w.Header()
		h.Add("Vary", "Accept")
		h.Add("Vary", "Accept-Encoding")
		h.Set("Content-Type", string(format))
		if !acceptsGzip(req.Header) {
			h.Set("Content-Length", strconv.Itoa(before.Len()+len(e.text)+after.Len()))
			w.Write(before.Bytes())
			w.Write(e.text)
			w.Write(after.Bytes())
			return
		}
		h.Set("Content-Encoding", "gzip")
		w.Write(gzipStream(before.Bytes(), e, after.Bytes()))
	})
}

// gzipStream is one gzip member of before, the exposition's text and after: the cached
// deflate blocks of the text between blocks compressed now. Each part is compressed on its
// own (no back-reference crosses into another), and the blocks before the last end in a sync
// flush, so they follow one another as one deflate stream (RFC 1951, 1952).
func gzipStream(before []byte, e *exposition, after []byte) []byte {
	deflated := e.deflate()
	out := bytes.NewBuffer(make([]byte, 0, len(deflated)+len(before)/2+len(after)/2+64))
	// ID1 ID2, CM deflate, no flags, no time, no extra flags, OS unknown.
	out.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255})
	fw := flateWriters.Get().(*flate.Writer)
	defer flateWriters.Put(fw)
	fw.Reset(out)
	fw.Write(before)
	fw.Flush()
	out.Write(deflated)
	fw.Reset(out)
	fw.Write(after)
	fw.Close() // the final block
	crc := crc32.Update(crc32.ChecksumIEEE(before), crc32.IEEETable, e.text)
	crc = crc32.Update(crc, crc32.IEEETable, after)
	var trailer [8]byte
	binary.LittleEndian.PutUint32(trailer[:4], crc)
	binary.LittleEndian.PutUint32(trailer[4:], uint32(len(before)+len(e.text)+len(after)))
	out.Write(trailer[:])
	return out.Bytes()
}

// acceptsGzip reports whether an Accept-Encoding header accepts gzip (RFC 9110 12.5.3): named
// with a q above 0, or not named and "*" with a q above 0.
func acceptsGzip(h http.Header) bool {
	gzipQ, starQ := -1.0, -1.0
	for _, v := range h.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			q := 1.0
			for _, p := range strings.Split(params, ";") {
				if k, val, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "q") {
					if f, err := strconv.ParseFloat(val, 64); err == nil {
						q = f
					}
				}
			}
			switch strings.ToLower(strings.TrimSpace(coding)) {
			case "gzip":
				gzipQ = q
			case "*":
				starQ = q
			}
		}
	}
	if gzipQ >= 0 {
		return gzipQ > 0
	}
	return starQ > 0
}
