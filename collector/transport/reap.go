package transport

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
)

// tagVar is the environment variable that marks every process a local command started, so that
// the ones that leave its process group (setsid) can still be found and killed.
const tagVar = "HARDTRAIL_STEP"

var (
	tagPrefix = func() string {
		b := make([]byte, 8)
		rand.Read(b)
		return hex.EncodeToString(b)
	}()
	tagSeq atomic.Uint64
)

// nextTag returns a tag of its own for one command: the process's prefix and a sequence number,
// ended by a dot so that no tag is the prefix of another.
func nextTag() string { return fmt.Sprintf("%s.%d.", tagPrefix, tagSeq.Add(1)) }

// killTagged kills every process whose environment holds tag (this process's prefix for every
// command), found through /proc; where there is no /proc it does nothing.
func killTagged(tag string) {
	needle := []byte("\x00" + tagVar + "=" + tag)
	dirs, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", d.Name(), "environ"))
		if err != nil {
			continue
		}
		if bytes.Contains(append([]byte{0}, env...), needle) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// reaperScript runs beside this process with a pipe from it on stdin: `+ PGID` and `- PGID` lines
// track the process groups of running commands; when the pipe ends (this process exited or was
// killed), it kills those groups and every process tagged by this process, then exits.
const reaperScript = `trap '' HUP INT TERM PIPE
_g=
while read -r _op _pg; do
	case $_pg in ''|0|1|*[!0-9]*) continue ;; esac
	case $_op in
	+) _g="$_g $_pg" ;;
	-) _n=; for _x in $_g; do [ "$_x" = "$_pg" ] || _n="$_n $_x"; done; _g=$_n ;;
	esac
done
for _x in $_g; do kill -s KILL -- -"$_x"; done
for _f in $(grep -l -F -s -e "$1" /proc/[0-9]*/environ); do
	_f=${_f#/proc/}
	kill -s KILL -- "${_f%/environ}"
done
`

// reaper is the helper shell; a nil pipe means it could not be started and groups are then only
// killed by Run itself.
type reaper struct {
	once sync.Once
	mu   sync.Mutex
	w    *os.File
}

var reap = &reaper{}

func (r *reaper) start() {
	pr, pw, err := os.Pipe()
	if err != nil {
		return
	}
	defer pr.Close()
	sh, err := exec.LookPath("sh")
	if err != nil {
		pw.Close()
		return
	}
	cmd := exec.Command(sh, "-c", reaperScript, "sh", tagVar+"="+tagPrefix+".")
	cmd.Stdin = pr
	cmd.Dir = "/"
	// A group of its own: a signal to this process's group (Ctrl-C) must not end it first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		pw.Close()
		return
	}
	// Its exit is never waited for: it ends when this process does.
	cmd.Process.Release()
	r.w = pw
}

func (r *reaper) send(op string, pgid int) {
	r.once.Do(r.start)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w != nil {
		fmt.Fprintf(r.w, "%s %d\n", op, pgid)
	}
}

func (r *reaper) add(pgid int)    { r.send("+", pgid) }
func (r *reaper) remove(pgid int) { r.send("-", pgid) }
