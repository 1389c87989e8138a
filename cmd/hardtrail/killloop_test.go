package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/agent/evidence"
)

// killLoop kills one command with SIGKILL at random moments, then checks what it left.
type killLoop struct {
	args func(i int) []string // the command that is killed
	// after checks what the killed run left, before the next run.
	after func(t *testing.T, i int)
	// next is the next run, to completion, with its own checks.
	next func(t *testing.T, i int)
	dirs []string // directories that must hold no temporary file after the next run
}

// orphans lists the live processes whose environment holds mark: what a killed run started
// and left behind.
func orphans(mark string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(env, []byte(mark)) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		out = append(out, e.Name()+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	return out
}

// tempFiles lists the temporary files of atomic writes under dirs.
func tempFiles(t *testing.T, dirs []string) []string {
	var out []string
	for _, d := range dirs {
		filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && strings.Contains(e.Name(), ".tmp-") {
				out = append(out, p)
			}
			return nil
		})
	}
	return out
}

func (kl killLoop) run(t *testing.T, kills int) {
	cmdOf := func(i int, mark string) *exec.Cmd {
		cmd := exec.Command(binary, kl.args(i)...)
		cmd.Env = cleanEnv("HT_KILL_MARK=" + mark)
		return cmd
	}
	// One whole run first: its time is the window the kills land in.
	start := time.Now()
	if out, err := cmdOf(-1, "warmup").CombinedOutput(); err != nil {
		t.Fatalf("a run to completion: %v\n%s", err, out)
	}
	full := time.Since(start)
	if kl.next != nil {
		kl.next(t, -1)
	}
	rng := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
	killed := 0
	for i := range kills {
		mark := fmt.Sprintf("HT_KILL_MARK=%d-%d", os.Getpid(), i)
		cmd := cmdOf(i, strings.TrimPrefix(mark, "HT_KILL_MARK="))
		begin := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(full)*12/10 + 1)))
		cmd.Process.Signal(syscall.SIGKILL)
		if err := cmd.Wait(); err != nil {
			killed++
		} else {
			full = (full + time.Since(begin)) / 2
		}
		// Nothing the killed run started may outlive it for long.
		deadline := time.Now().Add(3 * time.Second)
		for left := orphans(mark); len(left) > 0; left = orphans(mark) {
			if time.Now().After(deadline) {
				t.Fatalf("kill %d: processes outlived the killed run:\n%s", i, strings.Join(left, "\n"))
			}
			time.Sleep(20 * time.Millisecond)
		}
		if kl.after != nil {
			kl.after(t, i)
		}
		if kl.next != nil {
			kl.next(t, i)
		}
		if tmp := tempFiles(t, kl.dirs); len(tmp) > 0 {
			t.Fatalf("kill %d: temporary files left after the next run: %v", i, tmp)
		}
		if t.Failed() {
			return
		}
	}
	t.Logf("%d kills, %d landed before the run finished; one run takes %s", kills, killed, full.Round(time.Millisecond))
	if killed < kills/4 {
		t.Errorf("only %d of %d kills interrupted a run", killed, kills)
	}
}

func storeVerify(t *testing.T, store string, i int) {
	t.Helper()
	if out, errOut, code := ht(t, "--store", store, "store", "verify"); code != 0 {
		t.Fatalf("after kill %d: store verify exit %d\n%s%s", i, code, out, errOut)
	}
}

// SIGKILL at random moments of snapshot, tag, evidence export and keygen leaves no partial file and no
// temporary file once the next run is done, nothing running, and a store that verifies.
func TestKillLoops(t *testing.T) {
	kills := 50
	if testing.Short() {
		kills = 10
	}
	e := newAppEnv(t, "PermitRootLogin yes\n", "")
	// A command that runs a while, so that kills land while it runs: what it started must not
	// outlive the killed snapshot (beyond the grace the orphan check allows).
	f, err := os.OpenFile(e.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(f, "[[profile.source]]\nname = \"app/pause\"\ncommand = [\"sh\", \"-c\", \"sleep 0.1; echo ok\"]\n")
	f.Close()
	mustHT(t, "--config", e.config, "snapshot", "--incident", "INC-1", "--phase", "before")
	e.write(t, "PermitRootLogin no\n")
	mustHT(t, "--config", e.config, "snapshot", "--incident", "INC-1", "--phase", "after")
	for i := range 3 {
		e.write(t, fmt.Sprintf("PermitRootLogin no\n# edit %d\n", i))
		mustHT(t, "--config", e.config, "snapshot")
	}

	t.Run("snapshot", func(t *testing.T) {
		killLoop{
			args: func(i int) []string {
				return []string{"--config", e.config, "snapshot", "--note", fmt.Sprint("run ", i)}
			},
			next: func(t *testing.T, i int) {
				mustHT(t, "--config", e.config, "snapshot")
				storeVerify(t, e.store, i)
			},
			dirs: []string{e.dir},
		}.run(t, kills)
	})

	t.Run("tag", func(t *testing.T) {
		killLoop{
			args: func(i int) []string {
				return []string{"--config", e.config, "tag", fmt.Sprintf("local~%d", 1+(i+2)%3), "--incident", fmt.Sprintf("INC-%d", 100+i+1), "--phase", "before"}
			},
			next: func(t *testing.T, i int) { storeVerify(t, e.store, i) },
			dirs: []string{e.dir},
		}.run(t, kills)
	})

	t.Run("evidence export", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		os.Mkdir(out, 0o755)
		bundle := filepath.Join(out, "INC-1.tar.gz")
		verify := func(t *testing.T, what string) {
			if _, err := os.Stat(bundle); err != nil {
				return
			}
			if o, errOut, code := ht(t, "evidence", "verify", bundle); code != 0 {
				t.Fatalf("%s: the bundle does not verify (a partial file?): exit %d\n%s%s", what, code, o, errOut)
			}
		}
		killLoop{
			args:  func(int) []string { return []string{"--config", e.config, "evidence", "export", "INC-1", "-o", bundle} },
			after: func(t *testing.T, i int) { verify(t, fmt.Sprintf("after kill %d", i)) },
			next: func(t *testing.T, i int) {
				mustHT(t, "--config", e.config, "evidence", "export", "INC-1", "-o", bundle)
				verify(t, fmt.Sprintf("after the run that follows kill %d", i))
				storeVerify(t, e.store, i)
			},
			dirs: []string{out, e.dir},
		}.run(t, kills)
	})

	t.Run("keygen", func(t *testing.T) {
		dir := t.TempDir()
		prefix := filepath.Join(dir, "k")
		// whole checks that what is there is a whole key, or nothing, and the pair matches.
		whole := func(t *testing.T, what string, needBoth bool) {
			priv, perr := evidence.LoadPrivateKey(prefix)
			pub, uerr := evidence.LoadPublicKey(prefix + ".pub")
			_, pstat := os.Stat(prefix)
			_, ustat := os.Stat(prefix + ".pub")
			switch {
			case pstat == nil && perr != nil:
				t.Fatalf("%s: a partial private key: %v", what, perr)
			case ustat == nil && uerr != nil:
				t.Fatalf("%s: a partial public key: %v", what, uerr)
			case ustat == nil && pstat != nil:
				t.Fatalf("%s: a public key without its private key", what)
			case perr == nil && uerr == nil && !pub.Equal(priv.Public()):
				t.Fatalf("%s: the public key is not the private key's", what)
			case needBoth && (perr != nil || uerr != nil):
				t.Fatalf("%s: the key pair is not complete: %v, %v", what, perr, uerr)
			}
		}
		killLoop{
			args:  func(int) []string { return []string{"keygen", "-o", prefix} },
			after: func(t *testing.T, i int) { whole(t, fmt.Sprintf("after kill %d", i), false) },
			next: func(t *testing.T, i int) {
				// The next run completes the pair or finds it whole; then it is removed for
				// the next kill.
				out, errOut, code := ht(t, "keygen", "-o", prefix)
				if code != 0 && !strings.Contains(errOut, "already exists") {
					t.Fatalf("keygen after kill %d: exit %d\n%s%s", i, code, out, errOut)
				}
				whole(t, fmt.Sprintf("after the run that follows kill %d", i), true)
				os.Remove(prefix)
				os.Remove(prefix + ".pub")
			},
			dirs: []string{dir},
		}.run(t, kills)
	})
}
