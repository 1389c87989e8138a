package ssh

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
)

// The remote side of a session is one POSIX shell script. It is sent on the session's stdin and
// read with `head -c N` by the command line below, so the frame marker (which carries a random
// nonce) never appears in the argv or environment of any process on the target, where `ps` could
// print it.
//
// Each step writes a frame on stdout and on stderr:
//
//	MARKER B INDEX\n                 (both streams)
//	<raw output, any bytes>
//	\nMARKER E INDEX STATUS CODE\n   (stdout; STATUS 0 ran, 1 not found, 2 permission denied;
//	                                 CODE -1 when the command did not exit by itself)
//	\nMARKER E INDEX\n               (stderr)
//
// and the script ends with MARKER Z. Output before the first frame (a login banner, an rc file's
// chatter) is ignored. Inside a command's stderr frame, and not part of its output, come
// `\nMARKER P INDEX PGID\n` when it starts and `\nMARKER X INDEX CODE\n` when it exits.
//
// A command is isolated from the steps around it. It runs in a session and process group of its
// own (setsid(1)), with its stdout and stderr connected to pipes of its own; a relay process per
// pipe (`head -c`, the cap plus relaySlack bytes on stdout, 64 KiB on stderr, past which a
// drain that starts only then keeps the command from SIGPIPE) copies them to the session's
// streams. The command is started in the background by a subshell that reports its PID (the
// group's and session's ID) and, once it waited for it, its exit code, on a status pipe the
// script reads to its end: the script writes the step's end frame only once that subshell and
// both relays have ended. It then kills what is left of the command's group and, when the
// command was stopped or died by a signal, every process that carries the step's tag in its
// environment (see below), wherever it moved; the tagged processes of steps that ended by
// themselves are killed at the end of the script. A process the command left behind holds only
// pipes that nobody reads: nothing it writes can reach a later step's frame.
//
// What a command costs the target beside itself: six forks of the shell (the status pipe's
// subshell, the two pipelines' sides, the background start) and three short programs (setsid
// and the two relays); the script's own processes are shell forks, not new shells, so the
// marker stays in their memory. A file read costs a stat(1) and a head(1).
//
// A watchdog reads the rest of stdin. The client writes `T PGID INDEX` or `K PGID INDEX` lines
// there to stop a command that passed its timeout or its output cap (SIGTERM to its group, then
// SIGKILL to its group, session and tagged processes), or that exited while a process it started
// kept its output open (SIGKILL). Every command carries a per-step tag in its environment
// (_HT_STEP), found through /proc/PID/environ; when stdin ends (the client closed the session, or the
// connection dropped), the watchdog stops the login session's processes (the script first, so that
// no step starts after), then kills every tagged process, twice a second apart, and the rest of
// the login session, including commands that ignore SIGHUP. A process that both leaves its session and
// clears its environment escapes the sweep; so does one started through sudo when the login user
// is not root, which may not signal it.

// commandLine is the remote command: the script read from stdin by sh, whatever the login shell.
func commandLine(scriptLen int) string {
	return fmt.Sprintf(`exec sh -c 'eval "$(head -c %d)"'`, scriptLen)
}

// scriptHead pins pagers and locale, and defines the steps. Its prologue runs shell builtins
// only, but for the watchdog's fork; it finds head(1) and stat(1) in PATH once. A step's
// subshells run with the script's stderr on /dev/null, because dash reports a child killed by a
// signal ("Terminated") there.
const scriptHead = `exec 5<&0 0</dev/null 3>&1 4>&2
set -f
LC_ALL=C PAGER=cat SYSTEMD_PAGER= SYSTEMD_COLORS=0 PATH=${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/sbin:/sbin
export LC_ALL PAGER SYSTEMD_PAGER SYSTEMD_COLORS PATH
_h_sid=
command -v setsid >/dev/null 2>&1 && _h_sid=setsid
_h_sweep() {
	set +f
	for _h_f in $(grep -l -F -s -e "_HT_STEP=$_h_t.$2" /proc/[0-9]*/environ 2>/dev/null); do
		_h_f=${_h_f#/proc/}
		kill -s "$1" -- "${_h_f%/environ}"
	done
	set -f
}
( trap '' HUP INT TERM PIPE
  while read -r _h_c _h_x _h_y; do
    case $_h_x$_h_y in *[!0-9]*) continue ;; esac
    case $_h_x in ''|0|1) continue ;; esac
    case $_h_c in
    T) kill -s TERM -- -"$_h_x" || _h_sweep TERM "$_h_y." ;;
    K) kill -s KILL -- -"$_h_x"; pkill -KILL -s "$_h_x"; _h_sweep KILL "$_h_y." ;;
    esac
  done <&5
  pkill -TERM -s 0 || kill -s TERM 0
  _h_sweep KILL
  sleep 1
  _h_sweep KILL
  pkill -KILL -s 0 || kill -s KILL 0
) >/dev/null 2>&1 &
_h_wd=$!
exec 5<&-
_h_b() {
	printf '%s B %s\n' "$_h_m" "$1"
	printf '%s B %s\n' "$_h_m" "$1" >&2
}
_h_e() {
	printf '\n%s E %s %s %s\n' "$_h_m" "$1" "$2" "$3"
	printf '\n%s E %s\n' "$_h_m" "$1" >&2
}
_h_look() {
	case $1 in
	*/*)
		_h_p=$1
		[ -e "$1" ] || return 1
		[ -f "$1" ] && [ -x "$1" ] || return 2
		return 0
		;;
	esac
	_h_r=1
	_h_ifs=$IFS
	IFS=:
	for _h_d in $PATH; do
		[ -n "$_h_d" ] || _h_d=.
		if [ -f "$_h_d/$1" ]; then
			if [ -x "$_h_d/$1" ]; then
				IFS=$_h_ifs
				_h_p=$_h_d/$1
				return 0
			fi
			_h_r=2
		fi
	done
	IFS=$_h_ifs
	return $_h_r
}
_h_hd=head _h_st=stat
_h_look head && _h_hd=$_h_p
_h_look stat && _h_st=$_h_p
_h_run() {
	_h_i=$1 _h_su=$2 _h_o=$3
	shift 3
	if [ "$_h_su" = 1 ] && [ "$_h_uid" != 0 ]; then set -- sudo -n -- "$@"; fi
	_h_b "$_h_i"
	if _h_look "$1"; then
		shift
		{ _h_x=$( { { { _HT_STEP=$_h_t.$_h_i. $_h_sid "$_h_p" "$@" 2>&1 >&6 </dev/null 3>&- 4>&- 5>&- 6>&- &
			echo $! >&5
			printf '\n%s P %s %s\n' "$_h_m" "$_h_i" $! >&4
			wait $!
			_h_c=$?
			printf '\n%s X %s %s\n' "$_h_m" "$_h_i" $_h_c >&4
			echo $_h_c >&5
		} | { "$_h_hd" -c 65537; read -r _h_z && exec cat >/dev/null; } >&4 5>&- 6>&-; } 6>&1 | "$_h_hd" -c "$_h_o" >&3 5>&-; } 5>&1 >/dev/null ); } 2>/dev/null
		set -- $_h_x
		if [ -n "$1" ]; then
			kill -s KILL -- -"$1" 2>/dev/null
		fi
		case ${2:-x} in x | 129 | 1[3-9]? | 2??) _h_sweep KILL "$_h_i." 2>/dev/null ;; esac
		_h_e "$_h_i" 0 "${2:--1}"
	else
		_h_e "$_h_i" $? 0
	fi
}
_h_read() {
	_h_rc=0
	if [ ! -e "$1" ]; then
		_h_s=1
	elif [ ! -r "$1" ]; then
		_h_s=2
	else
		_h_s=0
		"$_h_st" -L -c '%s %f %u %g %U %G' -- "$1"
		_h_rc=$?
		if [ "$_h_rc" = 0 ] && [ -f "$1" ]; then
			"$_h_hd" -c "$2" -- "$1"
			_h_rc=$?
		fi
		if [ "$_h_rc" != 0 ]; then
			if [ ! -e "$1" ]; then
				_h_s=1 _h_rc=0
			elif [ ! -r "$1" ]; then
				_h_s=2 _h_rc=0
			fi
		fi
	fi
}
_h_file() {
	_h_b "$1"
	_h_read "$3" "$2"
	_h_e "$1" "$_h_s" "$_h_rc"
}
_h_rd() {
	printf '\n%s F %s\000' "$_h_rm" "$1"
	_h_read "$1" "$2"
	printf '\n%s E %s %s\n' "$_h_rm" "$_h_s" "$_h_rc"
}
{ read -r _h_hn </proc/sys/kernel/hostname && printf '%s H %s\n' "$_h_m" "$_h_hn"; } 2>/dev/null
`

// scriptTail kills what earlier steps left outside their sessions, then ends the watchdog.
const scriptTail = `_h_sweep KILL
printf '%s Z\n' "$_h_m"
kill -s KILL -- $_h_wd 2>/dev/null
`

type stepKind int

const (
	stepCommand stepKind = iota
	stepFile
	stepGlob
	stepGlobRead
)

// step is one framed section of a script.
type step struct {
	kind    stepKind
	argv    []string // stepCommand
	sudo    bool
	max     int64         // bytes of output kept; a file's target sends one more to show truncation
	timeout time.Duration // stepCommand: how long before the client stops it; 0 for never
	path    string        // stepFile
	glob    []string      // stepGlob, stepGlobRead
	match   string        // stepGlobRead: a case pattern matching a superset of the glob's matches
}

// quote makes s one word for a POSIX shell: single-quoted, embedded quotes closed, escaped and
// reopened. Nothing inside single quotes is special, newlines included.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func validWord(s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%q: NUL byte in a command word", s)
	}
	return nil
}

// script renders the steps as a shell script framed with marker.
func script(marker string, steps []step) []byte {
	var b strings.Builder
	b.WriteString("_h_m=" + quote(marker) + "\n")
	b.WriteString("_h_t=" + quote(stepTag(marker)) + "\n")
	var sudo, reads bool
	for _, s := range steps {
		sudo = sudo || s.sudo
		reads = reads || s.kind == stepGlobRead
	}
	if reads {
		b.WriteString("_h_rm=" + quote(recordMarker(marker)) + "\n")
	}
	b.WriteString(scriptHead)
	if sudo {
		// The effective user ID, from the second field of the shell's own Uid line.
		b.WriteString("{ while read -r _h_k _h_x _h_uid _h_x; do [ \"$_h_k\" = Uid: ] && break; _h_uid=; done </proc/self/status; } 2>/dev/null\n" +
			"[ -n \"$_h_uid\" ] || _h_uid=$(id -u 2>/dev/null)\n")
	}
	for i, s := range steps {
		switch s.kind {
		case stepCommand:
			su := 0
			if s.sudo {
				su = 1
			}
			// The relay sends past the cap by more than the frame reader holds back (a
			// possible start of the end marker), so the client sees the cap passed.
			fmt.Fprintf(&b, "_h_run %d %d %d", i, su, s.max+relaySlack)
			for _, w := range s.argv {
				b.WriteString(" " + quote(w))
			}
			b.WriteString("\n")
		case stepFile:
			fmt.Fprintf(&b, "_h_file %d %d %s\n", i, s.max+1, quote(s.path))
		case stepGlob:
			// The words are built by globWords: quoted literals around unquoted wildcards.
			fmt.Fprintf(&b, "_h_b %d\nset +f\nfor _h_f in %s; do if [ -e \"$_h_f\" ] || [ -L \"$_h_f\" ]; then printf '%%s\\000' \"$_h_f\"; fi; done\nset -f\n_h_e %d 0 0\n",
				i, strings.Join(s.glob, " "), i)
		case stepGlobRead:
			// As stepGlob, each name filtered on the target by a case pattern built by
			// caseWord, then read as a record; past maxGlobFiles a last header says so.
			fmt.Fprintf(&b, "_h_b %d\n_h_k=0\nset +f\nfor _h_f in %s; do\nset -f\n"+
				"case $_h_f in */.|*/..) continue ;; %s) ;; *) continue ;; esac\n"+
				"[ -e \"$_h_f\" ] || [ -L \"$_h_f\" ] || continue\n"+
				"_h_k=$((_h_k + 1))\n"+
				"if [ \"$_h_k\" -gt %d ]; then printf '\\n%%s F %%s\\000' \"$_h_rm\" \"$_h_f\"; break; fi\n"+
				"_h_rd \"$_h_f\" %d\ndone\nset -f\n_h_e %d 0 0\n",
				i, strings.Join(s.glob, " "), s.match, maxGlobFiles, s.max+1, i)
		}
	}
	b.WriteString(scriptTail)
	return []byte(b.String())
}

// relaySlack is how far past its cap a command's relay copies its output: more than one
// marker line.
const relaySlack = 2 * maxMarker

// maxMarker bounds the length of a marker (newMarker's is 35 bytes).
const maxMarker = 64

// stepTag is the session's tag for the environment of its commands: derived from the marker
// one way, so a command that reads it learns nothing of the marker.
func stepTag(marker string) string {
	h := sha256.Sum256([]byte("hardtrail step tag\x00" + marker))
	return "HS-" + hex.EncodeToString(h[:16])
}

// maxGlobWords bounds the shell words one pattern expands to (two per segment that starts with a
// wildcard, for names with and without a leading dot).
const maxGlobWords = 64

// globWords turns an absolute path.Match pattern into shell words whose expansion is a superset of
// its matches: every literal part single-quoted, every segment with a wildcard replaced by its
// literal prefix and an unquoted `*`. Nothing of the pattern reaches the shell unquoted except
// that `*` (and `.` before it), so no pattern can run code. The caller filters with path.Match.
func globWords(pattern string) ([]string, error) {
	words := []string{""}
	for _, seg := range strings.Split(strings.TrimPrefix(pattern, "/"), "/") {
		i := strings.IndexAny(seg, `*?[\`)
		switch {
		case i < 0:
			for j := range words {
				words[j] += quote("/" + seg)
			}
		case i > 0:
			for j := range words {
				words[j] += quote("/"+seg[:i]) + "*"
			}
		default:
			// path.Match's * matches a leading dot; the shell's does not without .*
			var next []string
			for _, w := range words {
				next = append(next, w+quote("/")+"*", w+quote("/")+".*")
			}
			words = next
		}
		if len(words) > maxGlobWords {
			return nil, errors.New("too many segments start with a wildcard")
		}
	}
	return words, nil
}

// caseWord turns an absolute path.Match pattern into a shell case pattern matching a superset of
// its matches among the names globWords expands to: literal parts single-quoted, every wildcard,
// class or not, an unquoted `*` (a class or `?` matches one rune, which may be several bytes).
// The caller filters with path.Match.
func caseWord(pattern string) string {
	var b strings.Builder
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			b.WriteString(quote(lit.String()))
			lit.Reset()
		}
	}
	star := func() {
		flush()
		if !strings.HasSuffix(b.String(), "*") {
			b.WriteString("*")
		}
	}
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '*', '?':
			star()
		case '\\':
			if i+1 < len(pattern) {
				i++
				lit.WriteByte(pattern[i])
			}
		case '[':
			j := i + 1
			for j < len(pattern) && pattern[j] != ']' {
				if pattern[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(pattern) {
				flush()
				return b.String() + "*"
			}
			star()
			i = j
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return b.String()
}

// validGlob checks a Glob pattern the way Local does, and cleans it.
func validGlob(pattern string) (string, error) {
	if !path.IsAbs(pattern) {
		return "", fmt.Errorf("glob %q: pattern must be an absolute path", pattern)
	}
	if strings.IndexByte(pattern, 0) >= 0 {
		return "", fmt.Errorf("glob %q: NUL byte in pattern", pattern)
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return "", fmt.Errorf("glob %q: %w", pattern, err)
	}
	return path.Clean(pattern), nil
}
