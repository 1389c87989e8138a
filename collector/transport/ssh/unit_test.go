package ssh

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"github.com/hardtrail/hardtrail/internal/testutil"
	"io"
	"io/fs"
	"math"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hardtrail/hardtrail/collector/transport"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestQuoteThroughShell(t *testing.T) {
	sh := testutil.Tool(t, "sh")
	words := []string{"", "a", "a b", "'", "''", `'\''`, "$(id)", "`id`", "a\nb", "\\", `"`, "*", "~", "$@", "\t", "é"}
	var script strings.Builder
	script.WriteString("printf '%s\\000'")
	for _, w := range words {
		script.WriteString(" " + quote(w))
	}
	out, err := exec.Command(sh, "-c", script.String()).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if diff := cmp.Diff(words, got); diff != "" {
		t.Errorf("words through sh (-want +got):\n%s", diff)
	}
}

func TestSplitAddress(t *testing.T) {
	for _, tt := range []struct {
		in, user, host, err string
	}{
		{in: "root@10.0.0.1:2222", user: "root", host: "10.0.0.1:2222"},
		{in: "10.0.0.1", host: "10.0.0.1:22"},
		{in: "admin@fw.example", user: "admin", host: "fw.example:22"},
		{in: "me@[::1]:2200", user: "me", host: "[::1]:2200"},
		{in: "::1", host: "[::1]:22"},
		{in: "a@b@host:22", user: "a@b", host: "host:22"},
		{in: "@host", err: "empty user"},
		{in: "host:0", err: "bad port"},
		{in: "host:ssh", err: "bad port"},
		{in: "", err: "want user@host:port"},
		{in: "user@", err: "want user@host:port"},
		{in: "bad host:22", err: "want user@host:port"},
	} {
		u, h, err := splitAddress(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("splitAddress(%q) error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || u != tt.user || h != tt.host {
			t.Errorf("splitAddress(%q) = %q %q %v, want %q %q", tt.in, u, h, err, tt.user, tt.host)
		}
	}
}

func TestGlobWords(t *testing.T) {
	for _, tt := range []struct {
		pattern string
		want    []string
	}{
		{"/etc/ssh/sshd_config", []string{`'/etc''/ssh''/sshd_config'`}},
		{"/etc/ssh/*.conf", []string{`'/etc''/ssh''/'*`, `'/etc''/ssh''/'.*`}},
		{"/etc/sshd*", []string{`'/etc''/sshd'*`}},
		{"/etc/*/x", []string{`'/etc''/'*'/x'`, `'/etc''/'.*'/x'`}},
		{"/a'b/$(id)*", []string{`'/a'\''b''/$(id)'*`}},
	} {
		got, err := globWords(tt.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("globWords(%q) (-want +got):\n%s", tt.pattern, diff)
		}
	}
	if _, err := globWords("/*/*/*/*/*/*/*"); err == nil {
		t.Error("no error for 2^7 words")
	}
}

func TestParseStat(t *testing.T) {
	for _, tt := range []struct {
		line string
		want *transport.File
		typ  fs.FileMode
		err  bool
	}{
		{line: "1347 81a4 0 0 root root", want: &transport.File{Size: 1347, Mode: 0o644, Owner: "root", Group: "root"}},
		{line: "68248 89ed 0 0 root root", want: &transport.File{Size: 68248, Mode: 0o755 | fs.ModeSetuid, Owner: "root", Group: "root"}},
		{line: "19 89e9 54321 54322 UNKNOWN UNKNOWN", want: &transport.File{Size: 19, Mode: 0o751 | fs.ModeSetuid, Owner: "54321", Group: "54322"}},
		{line: "4096 43ff 0 0 root root", want: &transport.File{Size: 4096, Mode: 0o777 | fs.ModeSticky, Owner: "root", Group: "root"}, typ: fs.ModeDir},
		{line: "0 11a4 0 0 root root", want: &transport.File{Size: 0, Mode: 0o644, Owner: "root", Group: "root"}, typ: fs.ModeNamedPipe},
		{line: "1 2 3", err: true},
		{line: "x 81a4 0 0 a b", err: true},
		{line: "-1 81a4 0 0 a b", err: true},
		{line: "1 zz 0 0 a b", err: true},
	} {
		got, typ, err := parseStat(tt.line)
		if tt.err {
			if err == nil {
				t.Errorf("parseStat(%q): no error", tt.line)
			}
			continue
		}
		if err != nil || typ != tt.typ {
			t.Errorf("parseStat(%q): type %v, %v", tt.line, typ, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("parseStat(%q) (-want +got):\n%s", tt.line, diff)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add("1347 81a4 0 0 root root")
	f.Add("19 89e9 54321 54322 UNKNOWN UNKNOWN")
	f.Fuzz(func(t *testing.T, line string) {
		file, _, err := parseStat(line)
		if err == nil && (file.Size < 0 || file.Mode&^(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0) {
			t.Errorf("parseStat(%q) = %+v", line, file)
		}
	})
}

// frame renders sections the way the remote script does.
func frame(marker string, junk []byte, sections [][]byte) []byte {
	var b bytes.Buffer
	b.Write(junk)
	fmt.Fprintf(&b, "%s H host.example\n", marker)
	for i, s := range sections {
		fmt.Fprintf(&b, "%s B %d\n", marker, i)
		b.Write(s)
		fmt.Fprintf(&b, "\n%s E %d 0 %d\n", marker, i, i)
	}
	fmt.Fprintf(&b, "%s Z\n", marker)
	return b.Bytes()
}

// readFrames feeds stream to a frameReader in chunks of the given sizes (cycled) and returns the
// sections' contents.
func readFrames(t testing.TB, marker string, stream []byte, n int, chunks []int, max int64) ([][]byte, *frameReader) {
	caps := make([]*transport.CapWriter, n)
	for i := range caps {
		caps[i] = &transport.CapWriter{Max: max}
	}
	fr := newFrameReader(marker, func(i int) io.Writer {
		if i < n {
			return caps[i]
		}
		return nil
	})
	for k := 0; len(stream) > 0; k++ {
		c := len(stream)
		if len(chunks) > 0 {
			c = min(max1(chunks[k%len(chunks)]), len(stream))
		}
		// Every other chunk comes through ReadFrom, as a session's copy sends it.
		if k%2 == 0 {
			if w, err := fr.Write(stream[:c]); w != c || err != nil {
				t.Fatalf("Write = %d, %v", w, err)
			}
		} else if r, err := fr.ReadFrom(bytes.NewReader(stream[:c])); r != int64(c) || err != nil {
			t.Fatalf("ReadFrom = %d, %v", r, err)
		}
		stream = stream[c:]
	}
	out := make([][]byte, n)
	for i := range caps {
		out[i] = caps[i].Bytes()
	}
	return out, fr
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

func TestFrameReader(t *testing.T) {
	marker := newMarker()
	bin := make([]byte, 512)
	for i := range bin {
		bin[i] = byte(i)
	}
	sections := [][]byte{
		[]byte("plain\n"),
		{},
		[]byte("no newline"),
		[]byte("\n\n"),
		bin,
		[]byte("\nHT-00000000000000000000000000000000 E 5 0 0\n" + marker[:10]),
		[]byte(marker[:len(marker)-1] + "\n"),
	}
	stream := frame(marker, []byte("Welcome to the target\n"+marker[:5]), sections)
	for _, chunks := range [][]int{nil, {1}, {2, 3, 7}, {len(marker)}, {len(marker) + 1}, {4096}} {
		got, fr := readFrames(t, marker, stream, len(sections), chunks, 1<<20)
		for i := range sections {
			if !bytes.Equal(got[i], sections[i]) {
				t.Errorf("chunks %v: section %d = %q, want %q", chunks, i, got[i], sections[i])
			}
			s, ok := fr.result(i)
			if !ok || !s.done || len(s.fields) != 2 || s.fields[1] != fmt.Sprint(i) {
				t.Errorf("chunks %v: section %d end %+v", chunks, i, s)
			}
		}
		if !fr.isFinished() || fr.host() != "host.example" {
			t.Errorf("chunks %v: finished %v host %q", chunks, fr.isFinished(), fr.host())
		}
		if !strings.HasPrefix(fr.unframed(), "Welcome to the target") {
			t.Errorf("chunks %v: unframed %q", chunks, fr.unframed())
		}
	}
	// A section past its cap keeps the cap and still ends where the frame says.
	got, fr := readFrames(t, marker, stream, len(sections), []int{3}, 4)
	if string(got[0]) != "plai" || string(got[2]) != "no n" {
		t.Errorf("capped sections: %q", got)
	}
	if !fr.isFinished() {
		t.Error("capped stream not finished")
	}
	// A stream cut short leaves the open section unfinished.
	_, fr = readFrames(t, marker, stream[:len(stream)/2], len(sections), nil, 1<<20)
	if fr.isFinished() {
		t.Error("half a stream finished")
	}
}

// TestFramePID: a P line inside a section names its command's PID, once, and is cut out of the
// section's bytes wherever the writes split it.
func TestFramePID(t *testing.T) {
	marker := newMarker()
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s B 0\nbefore", marker)
	fmt.Fprintf(&b, "\n%s P 0 4242\n", marker)
	b.WriteString("after\n")
	fmt.Fprintf(&b, "\n%s P 1 7\n", marker) // not this section's
	fmt.Fprintf(&b, "\n%s X 0 3\n", marker)
	fmt.Fprintf(&b, "\n%s E 0 0 0\n%s Z\n", marker, marker)
	stream := b.Bytes()
	for chunk := 1; chunk <= len(stream); chunk++ {
		out := &transport.CapWriter{Max: 1 << 20}
		fr := newFrameReader(marker, func(i int) io.Writer { return out })
		var notes []string
		fr.note = func(kind byte, i, pid int) { notes = append(notes, fmt.Sprint(string(kind), i, pid)) }
		for rest := stream; len(rest) > 0; {
			n := min(chunk, len(rest))
			fr.Write(rest[:n])
			rest = rest[n:]
		}
		if got := string(out.Bytes()); got != "beforeafter\n" || strings.Join(notes, ",") != "P0 4242,X0 3" {
			t.Fatalf("chunk %d: section %q notes %q", chunk, got, notes)
		}
		if s, _ := fr.result(0); !s.done || !fr.isFinished() {
			t.Fatalf("chunk %d: section %+v, finished %v", chunk, s, fr.isFinished())
		}
	}
}

func FuzzFrameReader(f *testing.F) {
	f.Add([]byte("out"), []byte{0, 1, 2}, []byte("junk"), uint8(3))
	f.Add([]byte("\n"), []byte("HT-"), []byte(""), uint8(1))
	f.Fuzz(func(t *testing.T, a, b, junk []byte, chunk uint8) {
		marker := "HT-0123456789abcdef0123456789abcdef"
		sections := [][]byte{a, b}
		for _, s := range append(sections, junk) {
			if bytes.Contains(s, []byte(marker[:len(marker)-1])) {
				return // a section that holds the nonce cannot be told apart; the nonce is random
			}
		}
		got, fr := readFrames(t, marker, frame(marker, junk, sections), 2, []int{int(chunk)}, math.MaxInt32)
		for i := range sections {
			if !bytes.Equal(got[i], sections[i]) {
				t.Fatalf("section %d = %q, want %q", i, got[i], sections[i])
			}
		}
		if !fr.isFinished() {
			t.Fatal("not finished")
		}
		// Arbitrary input never panics and never grows without bound.
		_, _ = readFrames(t, marker, append(append(junk, a...), b...), 2, []int{int(chunk)}, 64)
	})
}

func TestScriptGolden(t *testing.T) {
	steps := []step{
		{kind: stepCommand, argv: []string{"iptables-save"}, sudo: true, max: 1 << 20, timeout: 60},
		{kind: stepCommand, argv: []string{"printf", "%s\n", "it's", "$(id)"}, max: 100},
		{kind: stepFile, path: "/etc/ssh/sshd_config", max: 16 << 20},
		{kind: stepGlob, glob: []string{`'/etc''/ssh''/sshd_config.d''/'*`, `'/etc''/ssh''/sshd_config.d''/'.*`}, max: 1 << 20},
		{kind: stepGlobRead, glob: []string{`'/etc''/ssh''/sshd_config.d''/'*`, `'/etc''/ssh''/sshd_config.d''/'.*`},
			match: `'/etc/ssh/sshd_config.d/'*'.conf'`, max: 16 << 20},
	}
	got := script("HT-00000000000000000000000000000000", steps)
	golden := filepath.Join("..", "..", "..", "testdata", "ssh", "script.golden")
	testutil.Golden(t, golden, got)
	// The script is valid sh.
	if out, err := exec.Command(testutil.Tool(t, "sh"), "-n", "-c", string(got)).CombinedOutput(); err != nil {
		t.Errorf("sh -n: %v\n%s", err, out)
	}
}

// TestScriptLocally runs the remote script with the local sh, as sshd would, and parses it back.
func TestScriptLocally(t *testing.T) {
	sh := testutil.Tool(t, "sh")
	marker := newMarker()
	steps := []step{
		{kind: stepCommand, argv: []string{"printf", "%s|", "a b", "it's", "$(id)"}, max: 100},
		{kind: stepCommand, argv: []string{"sh", "-c", "echo err >&2; exit 5"}, max: 100},
		{kind: stepCommand, argv: []string{"no-such-command-hardtrail"}, max: 100},
		{kind: stepCommand, argv: []string{"seq", "100000"}, max: 6},
	}
	body := script(marker, steps)
	cmd := exec.Command(sh, "-c", `eval "$(head -c `+fmt.Sprint(len(body))+`)"`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // as under sshd, for the watchdog
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outs := []*transport.CapWriter{{Max: 100}, {Max: 100}, {Max: 100}, {Max: 6}}
	errs := []*transport.CapWriter{{Max: 100}, {Max: 100}, {Max: 100}, {Max: 100}}
	cmd.Stdout = newFrameReader(marker, func(i int) io.Writer { return outs[i] })
	cmd.Stderr = newFrameReader(marker, func(i int) io.Writer { return errs[i] })
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdin.Write(body)
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	fr := cmd.Stdout.(*frameReader)
	want := []struct {
		out, err, fields string
	}{
		{"a b|it's|$(id)|", "", "0 0"},
		{"", "err\n", "0 5"},
		{"", "", "1 0"},
		{"1\n2\n3\n", "", "0 141"}, // past the cap plus one byte the relay ends: SIGPIPE
	}
	for i, w := range want {
		s, _ := fr.result(i)
		if got := string(outs[i].Bytes()); got != w.out || string(errs[i].Bytes()) != w.err || strings.Join(s.fields, " ") != w.fields {
			t.Errorf("step %d: out %q err %q end %q, want %q %q %q", i, got, errs[i].Bytes(), s.fields, w.out, w.err, w.fields)
		}
	}
}

func TestMatchHosts(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := gossh.NewSignerFromKey(priv)
	key := signer.PublicKey()
	hashed := knownhosts.HashHostname("[10.0.0.5]:2222")
	hosts := []string{"10.0.0.5:22", "10.0.0.5:2222", "10.0.0.6:22", "web1.example:22", "web1.example:2222", "db.example:22", "[::1]:22"}
	patterns := []string{
		"10.0.0.5", "[10.0.0.5]:2222", "10.0.0.*", "10.0.0.?", "*.example", "web1.example,!db.example",
		"*,!10.0.0.6", "[10.0.0.*]:2222", hashed, "::1", "*", "!*", "db.example,10.0.0.6",
	}
	dir := t.TempDir()
	// Our matcher must agree with x/crypto's, which verifies the keys in the end.
	for i, pat := range patterns {
		kh := filepath.Join(dir, fmt.Sprint(i))
		if err := os.WriteFile(kh, []byte(pat+" "+string(gossh.MarshalAuthorizedKey(key))), 0o600); err != nil {
			t.Fatal(err)
		}
		cb, err := knownhosts.New(kh)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hosts {
			want := cb(h, &net.TCPAddr{}, key) == nil
			if got := matchHosts(strings.Split(pat, ","), h); got != want {
				t.Errorf("matchHosts(%q, %q) = %v, knownhosts says %v", pat, h, got, want)
			}
		}
	}
}

func TestAlgorithms(t *testing.T) {
	key := func(typ string) knownhosts.KnownKey {
		var k gossh.PublicKey
		switch typ {
		case "rsa":
			k = &fakeKey{gossh.KeyAlgoRSA}
		case "ecdsa":
			k = &fakeKey{gossh.KeyAlgoECDSA256}
		default:
			k = &fakeKey{gossh.KeyAlgoED25519}
		}
		return knownhosts.KnownKey{Key: k}
	}
	for _, tt := range []struct {
		name   string
		h      hostKeys
		first  string
		absent []string
	}{
		{"nothing on record", hostKeys{}, gossh.KeyAlgoED25519, []string{gossh.KeyAlgoRSA}},
		{"ed25519 only", hostKeys{known: []knownhosts.KnownKey{key("ed25519")}}, gossh.KeyAlgoED25519,
			[]string{gossh.KeyAlgoECDSA256, gossh.KeyAlgoRSASHA256}},
		{"rsa", hostKeys{known: []knownhosts.KnownKey{key("rsa")}}, gossh.KeyAlgoRSASHA512, []string{gossh.KeyAlgoRSA, gossh.KeyAlgoED25519}},
		{"rsa legacy", hostKeys{known: []knownhosts.KnownKey{key("rsa")}, legacy: true}, gossh.KeyAlgoRSASHA512, []string{gossh.KeyAlgoED25519}},
		{"ca and ecdsa", hostKeys{ca: true, known: []knownhosts.KnownKey{key("ecdsa")}}, gossh.CertAlgoED25519v01, []string{gossh.KeyAlgoED25519}},
		{"pins", hostKeys{pins: []string{"SHA256:x"}, known: []knownhosts.KnownKey{key("ecdsa")}}, gossh.KeyAlgoECDSA256, nil},
	} {
		got := tt.h.algorithms()
		if got[0] != tt.first {
			t.Errorf("%s: %q, want %s first", tt.name, got, tt.first)
		}
		for _, a := range tt.absent {
			if slices.Contains(got, a) {
				t.Errorf("%s: %q offers %s", tt.name, got, a)
			}
		}
		if tt.h.legacy != slices.Contains(got, gossh.KeyAlgoRSA) && tt.name == "rsa legacy" {
			t.Errorf("%s: %q", tt.name, got)
		}
	}
}

type fakeKey struct{ typ string }

func (k *fakeKey) Type() string                                 { return k.typ }
func (k *fakeKey) Marshal() []byte                              { return []byte(k.typ) }
func (k *fakeKey) Verify(data []byte, s *gossh.Signature) error { return nil }

func TestNewHostKeysPins(t *testing.T) {
	for _, pin := range []string{"SHA256:abc", "MD5:00:11", "sha256:" + strings.Repeat("a", 43)} {
		if _, err := newHostKeys("t", "h:22", nil, []string{pin}, false); err == nil {
			t.Errorf("pin %q accepted", pin)
		}
	}
	good := "SHA256:" + strings.Repeat("A", 43)
	if h, err := newHostKeys("t", "h:22", nil, []string{good + "="}, false); err != nil || h.pins[0] != good {
		t.Errorf("pin with padding: %v %v", h, err)
	}
}

func TestShuffledFrames(t *testing.T) {
	// Random sections with random chunking, many times: the parser is stateful across writes.
	marker := newMarker()
	r := mrand.New(mrand.NewPCG(1, 2))
	for range 200 {
		n := 1 + r.IntN(5)
		sections := make([][]byte, n)
		for i := range sections {
			sections[i] = make([]byte, r.IntN(300))
			for j := range sections[i] {
				sections[i][j] = "\nHT-ab\x00"[r.IntN(7)]
			}
		}
		got, fr := readFrames(t, marker, frame(marker, nil, sections), n, []int{1 + r.IntN(64)}, 1<<20)
		for i := range sections {
			if !bytes.Equal(got[i], sections[i]) {
				t.Fatalf("section %d = %q, want %q", i, got[i], sections[i])
			}
		}
		if !fr.isFinished() {
			t.Fatal("not finished")
		}
	}
}

// TestScriptWithoutSetsid: on a target without setsid(1) a command shares the script's process
// group, and a stop request still ends it and what it started, through the step's tag (a
// process forked while the tag is swept may escape one sweep; SIGKILL sweeps again).
func TestScriptWithoutSetsid(t *testing.T) {
	bin := t.TempDir()
	for _, tool := range []string{"sh", "head", "cat", "grep", "pkill", "sleep"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("no %s", tool)
		}
		if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	marker := newMarker()
	steps := []step{
		{kind: stepCommand, argv: []string{"sh", "-c", "sleep 1095.1 | cat"}, max: 100},
		{kind: stepCommand, argv: []string{"sh", "-c", "echo after"}, max: 100},
	}
	body := script(marker, steps)
	cmd := exec.Command(filepath.Join(bin, "sh"), "-c", `eval "$(head -c `+fmt.Sprint(len(body))+`)"`)
	cmd.Env = []string{"PATH=" + bin}
	// A session of its own, as under sshd: the watchdog's last resort kills the whole session.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outs := []*transport.CapWriter{{Max: 100}, {Max: 100}}
	cmd.Stdout = newFrameReader(marker, func(i int) io.Writer { return outs[i] })
	stderr := newFrameReader(marker, func(i int) io.Writer { return io.Discard })
	var mu sync.Mutex
	stderr.note = func(kind byte, i, pgid int) {
		if kind == 'P' && i == 0 {
			mu.Lock()
			defer mu.Unlock()
			// As the client does at a timeout: SIGTERM, then SIGKILL if the step has not
			// ended by then.
			fmt.Fprintf(stdin, "T %d 0\n", pgid)
			time.AfterFunc(time.Second, func() {
				mu.Lock()
				defer mu.Unlock()
				fmt.Fprintf(stdin, "K %d 0\n", pgid)
			})
		}
	}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	stdin.Write(body)
	mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the stopped step did not end")
	}
	stdin.Close()
	if got := string(outs[1].Bytes()); got != "after\n" {
		t.Errorf("after the stopped step: %q", got)
	}
	if out, err := exec.Command("pgrep", "-af", "sleep 1095.1").Output(); err == nil {
		t.Errorf("left running:\n%s", out)
	}
}

// TestFrameReadFrom: sections far larger than ReadFrom's chunk, with the marker's pieces at
// every chunk boundary, come back whole through readers that return a byte, half the asked
// size, or all of it.
func TestFrameReadFrom(t *testing.T) {
	marker := "HT-0123456789abcdef0123456789abcdef"
	r := mrand.New(mrand.NewPCG(1, 2))
	var sections [][]byte
	for _, n := range []int{0, 1, readChunk - 1, readChunk, readChunk + 1, 5*readChunk + 17} {
		s := make([]byte, n)
		for i := range s {
			s[i] = "ab\nHT-\x00"[r.IntN(7)]
		}
		sections = append(sections, s)
	}
	stream := frame(marker, []byte("banner\n"), sections)
	for name, wrap := range map[string]func(io.Reader) io.Reader{
		"one byte": iotest.OneByteReader, "half": iotest.HalfReader, "whole": func(r io.Reader) io.Reader { return struct{ io.Reader }{r} }, // no WriterTo: io.Copy uses ReadFrom
	} {
		caps := make([]*transport.CapWriter, len(sections))
		for i := range caps {
			caps[i] = &transport.CapWriter{Max: 1 << 20}
		}
		fr := newFrameReader(marker, func(i int) io.Writer {
			if i < len(caps) {
				return caps[i]
			}
			return nil
		})
		if n, err := io.Copy(fr, wrap(bytes.NewReader(stream))); n != int64(len(stream)) || err != nil {
			t.Fatalf("%s: copied %d of %d: %v", name, n, len(stream), err)
		}
		for i, want := range sections {
			if got := caps[i].Bytes(); !bytes.Equal(got, want) {
				t.Errorf("%s: section %d: %d bytes, want %d", name, i, len(got), len(want))
			}
		}
		if !fr.isFinished() {
			t.Errorf("%s: not finished", name)
		}
	}
}
