package ssh_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hardtrail/hardtrail/collector"
	"github.com/hardtrail/hardtrail/collector/transport"
	"github.com/hardtrail/hardtrail/collector/transport/ssh"
	"github.com/hardtrail/hardtrail/collector/transport/ssh/sshtest"
	"github.com/hardtrail/hardtrail/internal/testutil"
)

// The isolation tests: a step that is stopped (cap, timeout, cancellation, dropped connection)
// leaves nothing of itself on the target and no byte of itself in any other step's result.

// flood writes 3 MB of "a" on stdout.
var flood = []string{"sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' a"}

// after is what follows a stopped step: a command, a file read, and another command, each of
// which must come back byte-exact.
func after(t *testing.T) (cmds []transport.Command, file string, content []byte) {
	t.Helper()
	file = filepath.Join(t.TempDir(), "after.conf")
	content = []byte("PermitRootLogin no\nno final newline")
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return []transport.Command{{Argv: []string{"echo", "hello"}}, {Argv: []string{"printf", "%s", "x\x01y"}}}, file, content
}

// checkAfter fails the test unless the steps after the stopped one are byte-exact.
func checkAfter(t *testing.T, g *transport.Gathered, first int, content []byte) {
	t.Helper()
	for i, want := range []string{"hello\n", "x\x01y"} {
		r := g.Commands[first+i]
		if r.Err != nil || r.Result == nil {
			t.Errorf("command %d after the stopped one: %v", i, r.Err)
			continue
		}
		if got := string(r.Result.Stdout); got != want || r.Result.ExitCode != 0 || r.Result.Truncated || len(r.Result.Stderr) != 0 {
			t.Errorf("command %d after the stopped one: stdout %.60q (%d bytes) exit %d truncated %v stderr %.60q, want %q",
				i, got, len(got), r.Result.ExitCode, r.Result.Truncated, r.Result.Stderr, want)
		}
	}
	if len(g.Files) > 0 {
		f := g.Files[0]
		if f.Err != nil {
			if len(f.Err.Error()) > 200 {
				t.Errorf("file read after the stopped step: %d-byte error %.200q", len(f.Err.Error()), f.Err.Error())
			} else {
				t.Errorf("file read after the stopped step: %v", f.Err)
			}
		} else if !bytes.Equal(f.File.Content, content) {
			t.Errorf("file read after the stopped step: %.60q, want %q", f.File.Content, content)
		}
	}
}

// TestIsolationCap is the reproduction: a command past max_bytes, then `echo hello`, a file read
// and another command, in one session.
func TestIsolationCap(t *testing.T) {
	leakCheck(t)
	f := newFixture(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	tr := dial(t, f.config())
	next, file, content := after(t)
	// Gather orders commands before files: with the flood alone, the file read is the next step.
	for _, fileNext := range []bool{false, true} {
		g := transport.Gathering{Commands: append([]transport.Command{{Argv: flood, MaxBytes: 1000}}, next...), Files: []transport.FileRead{{Path: file}}}
		if fileNext {
			g.Commands = g.Commands[:1]
		}
		got, err := tr.Gather(t.Context(), g)
		if err != nil {
			t.Fatal(err)
		}
		a := got.Commands[0]
		if a.Err != nil || len(a.Result.Stdout) != 1000 || !a.Result.Truncated || a.Result.ExitCode != -1 ||
			strings.Trim(string(a.Result.Stdout), "a") != "" {
			t.Errorf("flood: %d bytes truncated %v exit %d, %v", len(a.Result.Stdout), a.Result.Truncated, a.Result.ExitCode, a.Err)
		}
		if fileNext {
			got.Commands = append(got.Commands, gatherCmds(t, tr, next)...)
		}
		checkAfter(t, got, 1, content)
	}
}

func gatherCmds(t *testing.T, tr *ssh.Transport, cmds []transport.Command) []transport.BatchResult {
	t.Helper()
	rs, err := tr.RunBatch(t.Context(), cmds)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestIsolationTimeout: a command that floods and then hangs past its timeout is recorded as
// timed out, with no exit code of its own, and the steps after it are byte-exact.
func TestIsolationTimeout(t *testing.T) {
	leakCheck(t)
	f := newFixture(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	tr := dial(t, f.config())
	next, file, content := after(t)
	slow := []string{"sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' a; while :; do echo bbbb; sleep 0.01; done"}
	got, err := tr.Gather(t.Context(), transport.Gathering{
		Commands: append([]transport.Command{{Argv: slow, Timeout: time.Second}}, next...),
		Files:    []transport.FileRead{{Path: file}},
	})
	if err != nil {
		t.Fatal(err)
	}
	a := got.Commands[0]
	if !errors.Is(a.Err, context.DeadlineExceeded) || stageOf(t, a.Err) != ssh.StageTimeout {
		t.Errorf("slow command: %v, want a timeout", a.Err)
	}
	if a.Result != nil && a.Result.ExitCode != -1 {
		t.Errorf("slow command: exit code %d, want none (-1)", a.Result.ExitCode)
	}
	checkAfter(t, got, 1, content)
}

// shapes are commands whose children outlive a plain kill of the command: a pipeline, a child
// after which the shell has more to do, and a child that leaves the session with setsid. Each
// sleep has a unique length so that pgrep finds it alone.
func shapes(base string) [][]string {
	return [][]string{
		{"sh", "-c", "sleep " + base + "1 | cat"},
		{"sh", "-c", "sleep " + base + "2; echo x"},
		{"sh", "-c", "setsid sleep " + base + "3 & sleep " + base + "4"},
	}
}

// noneLeft fails the test when any process whose command line has pattern runs on the target
// (the test's own machine) 3 s after the capture was stopped.
func noneLeft(t *testing.T, pattern string) {
	t.Helper()
	noSurvivor(t, pattern)
}

func TestIsolationNothingLeft(t *testing.T) {
	testutil.Tool(t, "setsid")
	leakCheck(t)
	f := newFixture(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	t.Run("cap", func(t *testing.T) {
		tr := dial(t, f.config())
		var cmds []transport.Command
		for _, s := range shapes("1061.") {
			// Flood past the cap first, then hang as the shape does.
			argv := []string{"sh", "-c", "yes | head -c 100000; " + s[2]}
			cmds = append(cmds, transport.Command{Argv: argv, MaxBytes: 1000})
		}
		cmds = append(cmds, transport.Command{Argv: []string{"echo", "hello"}})
		rs := gatherCmds(t, tr, cmds)
		for i, r := range rs[:3] {
			if r.Err != nil || !r.Result.Truncated {
				t.Errorf("shape %d: %+v", i, r)
			}
		}
		if rs[3].Err != nil || string(rs[3].Result.Stdout) != "hello\n" {
			t.Errorf("after the shapes: %+v", rs[3])
		}
		noneLeft(t, "sleep 1061")
	})
	t.Run("timeout", func(t *testing.T) {
		tr := dial(t, f.config())
		var cmds []transport.Command
		for _, s := range shapes("1062.") {
			cmds = append(cmds, transport.Command{Argv: s, Timeout: time.Second})
		}
		cmds = append(cmds, transport.Command{Argv: []string{"echo", "hello"}})
		rs := gatherCmds(t, tr, cmds)
		for i, r := range rs[:3] {
			if !errors.Is(r.Err, context.DeadlineExceeded) {
				t.Errorf("shape %d: %v, want a timeout", i, r.Err)
			}
		}
		if rs[3].Err != nil || string(rs[3].Result.Stdout) != "hello\n" {
			t.Errorf("after the shapes: %+v", rs[3])
		}
		noneLeft(t, "sleep 1062")
	})
	t.Run("cancel", func(t *testing.T) {
		tr := dial(t, f.config())
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		concurrently(shapes("1063."), func(argv []string) {
			_, err := tr.Run(ctx, transport.Command{Argv: argv})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%q: %v, want the context's deadline", argv, err)
			}
		})
		noneLeft(t, "sleep 1063")
	})
	t.Run("dropped", func(t *testing.T) {
		proxy := sshtest.NewProxy(t, f.srv.Addr)
		cfg := f.config()
		cfg.Address = "root@" + proxy.Addr
		cfg.KnownHosts = []string{sshtest.WriteKnownHosts(t, f.dir, f.srv.KnownHostsLineAs(proxy.Addr, "ed25519"))}
		tr := dial(t, cfg)
		time.AfterFunc(time.Second, proxy.Drop)
		concurrently(shapes("1064."), func(argv []string) {
			if _, err := tr.Run(t.Context(), transport.Command{Argv: argv}); err == nil {
				t.Errorf("%q: no error after the connection dropped", argv)
			}
		})
		noneLeft(t, "sleep 1064")
	})
}

func concurrently(argvs [][]string, fn func([]string)) {
	var wg sync.WaitGroup
	for _, a := range argvs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(a)
		}()
	}
	wg.Wait()
}

// TestFramingProperty: generated outputs (random bytes, NULs, text that looks like a frame or a
// marker, empty, no final newline) on stdout and stderr, with random exit codes, come back through
// a real sshd byte-identical to what the same commands print locally.
func TestFramingProperty(t *testing.T) {
	leakCheck(t)
	f := newFixture(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	tr := dial(t, f.config())
	local := transport.NewLocal()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	seed := rng.Uint64()
	rng = rand.New(rand.NewPCG(seed, 2))
	const n = 200
	var cmds []transport.Command
	for i := range n {
		out, errOut := payload(rng, i), payload(rng, i+1)
		po, pe := filepath.Join(dir, fmt.Sprint(i, ".out")), filepath.Join(dir, fmt.Sprint(i, ".err"))
		if err := os.WriteFile(po, out, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(pe, errOut, 0o644); err != nil {
			t.Fatal(err)
		}
		// Exit codes past 128 read as death by a signal (-1), as the shell reports both alike.
		code := rng.IntN(4) * rng.IntN(42)
		cmds = append(cmds, transport.Command{Argv: []string{"sh", "-c", `cat "$1"; cat "$2" >&2; exit "$3"`, "sh", po, pe, fmt.Sprint(code)}})
	}
	start := time.Now()
	var remote []transport.BatchResult
	const per = 50 // commands per session
	for k := 0; k < n; k += per {
		remote = append(remote, gatherCmds(t, tr, cmds[k:k+per])...)
	}
	t.Logf("%d commands in %d sessions: %s (seed %d)", n, n/per, time.Since(start).Round(time.Millisecond), seed)
	for i, c := range cmds {
		want, err := local.Run(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		got := remote[i]
		if got.Err != nil {
			t.Errorf("command %d: %v", i, got.Err)
			continue
		}
		if !bytes.Equal(got.Result.Stdout, want.Stdout) || !bytes.Equal(got.Result.Stderr, want.Stderr) || got.Result.ExitCode != want.ExitCode {
			t.Errorf("command %d (seed %d): ssh exit %d, local %d; stdout (-local +ssh):\n%s\nstderr (-local +ssh):\n%s", i, seed,
				got.Result.ExitCode, want.ExitCode, cmp.Diff(want.Stdout, got.Result.Stdout), cmp.Diff(want.Stderr, got.Result.Stderr))
		}
	}
}

// payload generates one command output of a kind chosen by i and rng.
func payload(rng *rand.Rand, i int) []byte {
	hex := func(n int) string {
		const digits = "0123456789abcdef"
		b := make([]byte, n)
		for k := range b {
			b[k] = digits[rng.IntN(16)]
		}
		return string(b)
	}
	marker := "HT-" + hex(32)
	var b bytes.Buffer
	switch i % 8 {
	case 0: // random bytes, NULs included
		r := make([]byte, rng.IntN(6000))
		for k := range r {
			r[k] = byte(rng.UintN(256))
		}
		b.Write(r)
	case 1: // empty
	case 2: // frames of another session
		for range 1 + rng.IntN(5) {
			fmt.Fprintf(&b, "\n%s E %d 0 %d\n%s B %d\n%s P %d 1\n%s X %d 0\n%s Z\n", marker, rng.IntN(60), rng.IntN(3),
				marker, rng.IntN(60), marker, rng.IntN(60), marker, rng.IntN(60), marker)
		}
	case 3: // marker-like text: prefixes, the record marker's shape, an unterminated line
		fmt.Fprintf(&b, "HT-\nHT-%s\nHR-%s F /etc/x\x00\n%s", hex(rng.IntN(32)), hex(32), marker[:rng.IntN(len(marker))])
	case 4: // text with no final newline
		fmt.Fprintf(&b, "line one\nline two without end %s", hex(8))
	case 5: // only newlines
		b.WriteString(strings.Repeat("\n", rng.IntN(5)))
	case 6: // long lines with carriage returns and a trailing backslash
		fmt.Fprintf(&b, "%s\r\n%s\\", strings.Repeat("x", rng.IntN(9000)), hex(rng.IntN(100)))
	case 7: // a mix
		b.Write([]byte{0, '\n', 0})
		fmt.Fprintf(&b, "\n%s E 0 0 0", marker)
		b.Write(bytes.Repeat([]byte{0xff, 0xfe}, rng.IntN(100)))
	}
	return b.Bytes()
}

// TestCollectIsolated is the reproduction through a whole capture, over SSH and locally: a source
// past max_bytes and one past its timeout, then `echo hello` and a file. Every following
// artifact is byte-exact with status ok, and the timed-out one is recorded as timed out with no
// exit code.
func TestCollectIsolated(t *testing.T) {
	f := newFixture(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	file := filepath.Join(f.dir, "after.conf")
	if err := os.WriteFile(file, []byte("PermitRootLogin no\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	doc := fmt.Sprintf(`[[profile]]
name = "p"
[[profile.source]]
name = "a-flood"
command = ["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' a"]
max_bytes = 1000
[[profile.source]]
name = "b-hello"
command = ["echo", "hello"]
[[profile.source]]
name = "c-slow"
command = ["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' a; sleep 1091.5"]
timeout = "1s"
[[profile.source]]
name = "d-hello"
command = ["echo", "hello"]
[[profile.source]]
name = "e-file"
files = [%q]
`, file)
	ps, err := collector.LoadProfiles("p.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	for name, tr := range map[string]transport.Transport{"ssh": dial(t, f.config()), "local": transport.NewLocal()} {
		t.Run(name, func(t *testing.T) {
			c, err := collector.Collect(t.Context(), tr, "t", []*collector.Profile{&ps[0]}, nil, collector.Options{})
			if err != nil {
				t.Fatal(err)
			}
			arts := map[string]collector.Artifact{}
			for _, a := range c.Artifacts {
				arts[a.Name] = a
			}
			if a := arts["a-flood"]; !a.Truncated || len(a.Content) != 1000 || a.Unavailable != "" {
				t.Errorf("a-flood: %d bytes, truncated %v, %q", len(a.Content), a.Truncated, a.Unavailable)
			}
			if a := arts["c-slow"]; !strings.HasPrefix(a.Unavailable, "timed out") || a.ExitCode != nil || len(a.Content) != 0 {
				t.Errorf("c-slow: unavailable %q, exit code %v, %d bytes; want timed out with no exit code", a.Unavailable, a.ExitCode, len(a.Content))
			}
			for _, n := range []string{"b-hello", "d-hello"} {
				if a := arts[n]; string(a.Content) != "hello\n" || a.Unavailable != "" || a.Truncated || a.ExitCode == nil || *a.ExitCode != 0 || a.Stderr != "" {
					t.Errorf("%s: %.60q (%d bytes), unavailable %q, truncated %v, exit %v", n, a.Content, len(a.Content), a.Unavailable, a.Truncated, a.ExitCode)
				}
			}
			if a := arts["e-file"]; string(a.Content) != "PermitRootLogin no\n" || a.Unavailable != "" {
				t.Errorf("e-file: %.60q, unavailable %q", a.Content, a.Unavailable)
			}
			noSurvivor(t, "sleep 1091.5")
		})
	}
}

// TestKilledCollector: when the process running a capture over SSH is killed with SIGKILL, the
// connection drops and nothing of the capture survives on the target. The process is this test
// binary, run again as a helper with the fixture's settings in its environment.
func TestKilledCollector(t *testing.T) {
	if os.Getenv("HARDTRAIL_TEST_HELPER") == "ssh" {
		cfg := ssh.Config{
			Address:       os.Getenv("HT_ADDR"),
			IdentityFiles: []string{os.Getenv("HT_KEY")},
			KnownHosts:    []string{os.Getenv("HT_KH")},
		}
		tr, err := ssh.Dial(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		// Three sessions at once, each one shape.
		concurrently(shapes("1097."), func(argv []string) { tr.Run(context.Background(), transport.Command{Argv: argv}) })
		t.Fatal("the helper's commands ended")
	}
	testutil.Tool(t, "setsid")
	f := newFixture(t, sshtest.Options{HostKeyTypes: []string{"ed25519"}})
	cfg := f.config()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledCollector$", "-test.count=1")
	cmd.Env = append(os.Environ(), "HARDTRAIL_TEST_HELPER=ssh", "HT_ADDR="+cfg.Address, "HT_KEY="+f.key.Path, "HT_KH="+f.kh)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgrep := testutil.Tool(t, "pgrep")
	deadline := time.Now().Add(15 * time.Second)
	for _, want := range []string{"sleep 1097.1", "sleep 1097.2", "sleep 1097.3", "sleep 1097.4"} {
		for exec.Command(pgrep, "-f", want).Run() != nil {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("%s never started", want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	noSurvivor(t, "sleep 1097.")
}
