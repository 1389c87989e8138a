package main

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
)

// Completion through cobra's __complete command, as the shells call it: target names from the
// config, snapshot references and incident IDs from the store, artifacts of a snapshot, and
// flag values.
func TestCompletion(t *testing.T) {
	e := newAppEnv(t, "secure = yes\n", "")
	// Before the first snapshot there is no store, and completion does not create one.
	if out := mustHT(t, "--config", e.config, "__complete", "show", ""); out != "local\ttarget (local)\n:4\n" {
		t.Errorf("show before any snapshot: %q", out)
	}
	if _, err := os.Stat(e.store); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("completion created the store: %v", err)
	}
	before := snapshotJSON(t, "--config", e.config, "snapshot", "--incident", "INC-7", "--phase", "before")[0].ID
	e.write(t, "secure = no\n")
	after := snapshotJSON(t, "--config", e.config, "snapshot", "--incident", "INC-7", "--phase", "after")[0].ID
	for _, tc := range []struct {
		args []string
		want []string // candidates, without descriptions, in order
	}{
		{[]string{"snapshot", ""}, []string{"local"}},
		{[]string{"snapshot", "local", ""}, nil}, // each target once
		{[]string{"check", "lo"}, []string{"local"}},
		{[]string{"check", "x"}, nil},
		{[]string{"log", "local", ""}, nil},
		{[]string{"show", ""}, []string{"local", after[:12], before[:12], "INC-7:before", "INC-7:after"}},
		{[]string{"show", "INC-7:"}, []string{"INC-7:before", "INC-7:after"}},
		{[]string{"show", before[:8]}, []string{before[:12]}},
		{[]string{"show", "local", ""}, []string{"app/conf"}},
		{[]string{"diff", "INC-7:before", "INC-7:a"}, []string{"INC-7:after"}},
		{[]string{"diff", "INC-7:before", "local", "--artifact", ""}, []string{"app/conf"}},
		{[]string{"diff", "INC-7:before", "local", ""}, nil},
		{[]string{"incident", "show", ""}, []string{"INC-7"}},
		{[]string{"evidence", "export", "I"}, []string{"INC-7"}},
		{[]string{"tag", "local", "--incident", ""}, []string{"INC-7"}},
		{[]string{"tag", "local", "--phase", ""}, []string{"before", "after"}},
		{[]string{"snapshot", "--phase", "a"}, []string{"after"}},
		{[]string{"check", "--snapshot", "INC"}, []string{"INC-7:before", "INC-7:after"}},
		{[]string{"check", "--format", ""}, []string{"text", "json", "junit"}},
		{[]string{"log", "--format", ""}, []string{"text", "json"}},
		{[]string{"--log-level", "w"}, []string{"warn"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out := mustHT(t, append([]string{"--config", e.config, "__complete"}, tc.args...)...)
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if last := lines[len(lines)-1]; last != ":4" {
				t.Errorf("directive %q, want :4 (no file completion)", last)
			}
			var got []string
			for _, l := range lines[:len(lines)-1] {
				got = append(got, strings.SplitN(l, "\t", 2)[0])
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("got %q, want %q\n%s", got, tc.want, out)
			}
		})
	}
}
