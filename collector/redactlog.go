package collector

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
)

// LogHandler redacts every log record before the handler it wraps sees it: the message and
// every attribute's value (errors and other values as their text), with the same rules as
// stored content. Its placeholders use a key of their own, so a log line cannot be matched
// against a stored placeholder.
type LogHandler struct {
	next slog.Handler
	red  *Redactor
}

var _ slog.Handler = (*LogHandler)(nil)

// NewLogHandler wraps next with redaction under a random key.
func NewLogHandler(next slog.Handler) *LogHandler {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	r, _ := NewRedactor(key)
	return &LogHandler{next: next, red: r}
}

func (h *LogHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *LogHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.red.RedactString(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *LogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = h.attr(a)
	}
	return &LogHandler{next: h.next.WithAttrs(red), red: h.red}
}

func (h *LogHandler) WithGroup(name string) slog.Handler {
	return &LogHandler{next: h.next.WithGroup(name), red: h.red}
}

func (h *LogHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.red.RedactString(v.String()))
	case slog.KindGroup:
		g := v.Group()
		red := make([]any, len(g))
		for i, x := range g {
			red[i] = h.attr(x)
		}
		return slog.Group(a.Key, red...)
	case slog.KindAny:
		var s string
		switch x := v.Any().(type) {
		case error:
			s = x.Error()
		case fmt.Stringer:
			s = x.String()
		case []string:
			return slog.Any(a.Key, h.red.RedactArgv(x))
		default:
			s = fmt.Sprint(x)
		}
		if r := h.red.RedactString(s); r != s {
			return slog.String(a.Key, r)
		}
		return slog.Attr{Key: a.Key, Value: v}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
