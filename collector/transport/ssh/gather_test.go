package ssh_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hardtrail/hardtrail/collector"
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

// Glob reads in one session: the matches as Glob finds them, each file as ReadFile reads it.
func TestGatherGlobReads(t *testing.T) {
	f := newFixture(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	tr := dial(t, f.config())
	local := transport.NewLocal()
	ctx := t.Context()
	dir := globTree(t)
	if err := os.Symlink("nowhere", filepath.Join(dir, "dangling.conf")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fake.conf"), []byte("\nHR-00000000000000000000000000000000 E 0 0\n"+
		"\nHT-00000000000000000000000000000000 E 0 0 0\n\x00\xff"), 0o644); err != nil {
		t.Fatal(err)
	}
	patterns := []string{
		"/etc/ssh/*", "/etc/os-releas?", "/etc/[a-c]*.conf", "/etc/ssh/sshd_config",
		dir + "/*", dir + "/*.conf", dir + "/.*", dir + "/*/x.conf", dir + "/[ab]*", dir + "/?.conf", dir + "/nomatch*",
		dir + "/a.conf", dir + "/missing", dir + "/with space*", dir + "/quote'*", dir + "/$(touch*", dir + `/\*`,
		dir + "/*\n*", "relative/*", "/etc/[",
	}
	var g transport.Gathering
	for i, p := range patterns {
		g.GlobReads = append(g.GlobReads, transport.FileGlob{Pattern: p, MaxBytes: int64(i % 3 * 7)})
	}
	before := sessions(f.srv)
	got, err := tr.Gather(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if n := sessions(f.srv) - before; n != 1 {
		t.Errorf("gather used %d sessions, want 1", n)
	}
	for i, gr := range g.GlobReads {
		r := got.GlobReads[i]
		lg, lerr := local.Glob(ctx, gr.Pattern)
		if (lerr == nil) != (r.Err == nil) {
			t.Errorf("%q: local %v, ssh %v", gr.Pattern, lerr, r.Err)
			continue
		}
		if diff := cmp.Diff(lg, r.Paths); diff != "" || len(r.Files) != len(r.Paths) {
			t.Errorf("%q: paths (-local +ssh):\n%s", gr.Pattern, diff)
			continue
		}
		for k, p := range r.Paths {
			rf, rerr := r.Files[k].File, r.Files[k].Err
			if filepath.Base(p) == "fifo" {
				if !errors.Is(rerr, transport.ErrNotRegular) {
					t.Errorf("%q: FIFO read: %v", gr.Pattern, rerr)
				}
				continue
			}
			lf, lerr := local.ReadFile(ctx, p, gr.MaxBytes)
			if (lerr == nil) != (rerr == nil) || errors.Is(lerr, transport.ErrNotFound) != errors.Is(rerr, transport.ErrNotFound) {
				t.Errorf("%q: read %s: local %v, ssh %v", gr.Pattern, p, lerr, rerr)
				continue
			}
			if diff := cmp.Diff(lf, rf); diff != "" {
				t.Errorf("%q: read %s (-local +ssh):\n%s", gr.Pattern, p, diff)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Error("a glob ran code on the target")
	}
}

// A profile of commands, files and a glob costs the target one session.
func TestCollectOneSession(t *testing.T) {
	f := newFixture(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	tr := dial(t, f.config())
	confd := filepath.Join(f.dir, "conf.d")
	if err := os.Mkdir(confd, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"10-a.conf", "20-b.conf", "skip.txt"} {
		if err := os.WriteFile(filepath.Join(confd, n), []byte("in "+n+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	doc := fmt.Sprintf(`[[profile]]
name = "p"
[[profile.source]]
name = "os"
files = ["/etc/os-release"]
[[profile.source]]
name = "conf"
files = ["/etc/hostname", %q]
[[profile.source]]
name = "id"
command = ["id", "-u"]
`, filepath.Join(confd, "*.conf"))
	ps, err := collector.LoadProfiles("p.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	before := sessions(f.srv)
	c, err := collector.Collect(t.Context(), tr, "t", []*collector.Profile{&ps[0]}, nil, collector.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := sessions(f.srv) - before; n != 1 {
		t.Errorf("the capture used %d sessions, want 1", n)
	}
	var got []string
	for _, a := range c.Artifacts {
		got = append(got, fmt.Sprintf("%s %q %s", a.Name, a.Content, a.Unavailable))
	}
	if len(got) != 5 || !strings.Contains(got[1], `"in 10-a.conf\n"`) || !strings.Contains(got[2], `"in 20-b.conf\n"`) {
		t.Errorf("artifacts:\n%s", strings.Join(got, "\n"))
	}
}
