package ssh_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/collector/transport"
	"github.com/hardtrail/hardtrail/collector/transport/ssh/sshtest"
)

// Commands, file reads and globs in one session, each result as Run, ReadFile and Glob give it.
func TestGather(t *testing.T) {
	f := newFixture(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	tr := dial(t, f.config())
	for name, content := range map[string]string{"a.conf": "A\n", "b.conf": "B\n", "c.txt": "C\n"} {
		if err := os.WriteFile(filepath.Join(f.dir, name), []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	before := sessions(f.srv)
	got, err := tr.Gather(t.Context(), transport.Gathering{
		Commands: []transport.Command{
			{Argv: []string{"echo", "one"}},
			{Argv: []string{"hardtrail-no-such-command"}},
			{Argv: []string{"sleep", "30"}, Timeout: time.Second},
		},
		Files: []transport.FileRead{{Path: filepath.Join(f.dir, "a.conf")}, {Path: filepath.Join(f.dir, "missing")}, {Path: filepath.Join(f.dir, "b.conf"), MaxBytes: 1}},
		Globs: []string{filepath.Join(f.dir, "*.conf"), filepath.Join(f.dir, "none-*")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := sessions(f.srv) - before; n != 1 {
		t.Errorf("gather used %d sessions, want 1", n)
	}
	if r := got.Commands[0]; r.Err != nil || string(r.Result.Stdout) != "one\n" {
		t.Errorf("command 0: %+v", r)
	}
	if r := got.Commands[1]; !errors.Is(r.Err, transport.ErrNotFound) {
		t.Errorf("command 1: %v", r.Err)
	}
	if r := got.Commands[2]; r.Err == nil && (r.Result == nil || r.Result.ExitCode == 0) {
		t.Errorf("a command past its own timeout was not stopped: %+v", r)
	} else if r.Result != nil && r.Result.Duration > 10*time.Second {
		t.Errorf("command ran %s despite a 1s timeout", r.Result.Duration)
	}
	if r := got.Files[0]; r.Err != nil || string(r.File.Content) != "A\n" || r.File.Mode.Perm() != 0o640 {
		t.Errorf("file 0: %+v %v", r.File, r.Err)
	}
	if r := got.Files[1]; !errors.Is(r.Err, transport.ErrNotFound) {
		t.Errorf("file 1: %v", r.Err)
	}
	if r := got.Files[2]; r.Err != nil || string(r.File.Content) != "B" || !r.File.Truncated {
		t.Errorf("file 2: %+v %v", r.File, r.Err)
	}
	if g := got.Globs[0]; g.Err != nil || len(g.Paths) != 2 || filepath.Base(g.Paths[0]) != "a.conf" {
		t.Errorf("glob 0: %+v", g)
	}
	if g := got.Globs[1]; g.Err != nil || len(g.Paths) != 0 {
		t.Errorf("glob 1: %+v", g)
	}
}
