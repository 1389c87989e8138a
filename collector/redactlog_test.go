package collector

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestLogHandlerRedacts(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewLogHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	const tok = "ghp_R2d2C3poBB8x7Q1w9e8r7t6y5u4i3o2p1a0S"
	err := fmt.Errorf("source app: %w", errors.New("GET https://ci:Hunter2Hunter2@git.example.net/x: 401"))
	log.With("target", "web1", "token", "password="+tok).WithGroup("g").Warn("fetch "+tok+" failed",
		"err", err, "argv", []string{"curl", "--password", "Sw0rdfish-xyz"}, slog.Group("h", "auth", "Authorization: Bearer "+tok), "n", 3)
	out := buf.String()
	for _, s := range []string{tok, "Hunter2Hunter2", "Sw0rdfish-xyz"} {
		if strings.Contains(out, s) {
			t.Errorf("log line holds %q:\n%s", s, out)
		}
	}
	for _, keep := range []string{"target=web1", "g.n=3", "source app", "git.example.net"} {
		if !strings.Contains(out, keep) {
			t.Errorf("log line lost %q:\n%s", keep, out)
		}
	}
}
