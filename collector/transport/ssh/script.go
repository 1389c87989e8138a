package ssh

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// The remote side of a session is one POSIX shell script. It is sent on the session's stdin and
// read with `head -c N` by the command line below, so the frame marker (which carries a random
// nonce) never appears in the argv of any process on the target, where `ps` could print it.
//
// Each step writes a frame on stdout and on stderr:
//
//	MARKER B INDEX\n                 (both streams)
//	<raw output, any bytes>
//	\nMARKER E INDEX STATUS CODE\n   (stdout; STATUS 0 ran, 1 not found, 2 permission denied)
//	\nMARKER E INDEX\n               (stderr)
//
// and the script ends with MARKER Z. Output before the first frame (a login banner, an rc file's
// chatter) is ignored. A command runs as a child of the script's shell, which first writes
// `\nMARKER P INDEX PID\n` inside the step's stderr frame (not part of the output).
//
// A watchdog reads the rest of stdin. The client writes `T PID` or `K PID` lines there to stop a
// command that passed its timeout or its output cap (SIGTERM, then SIGKILL to it and its
// children); the shell's own builtins do it, so a command costs the target one fork and exec,
// as in a plain shell. When the client closes the session or the connection drops, stdin ends
// and the watchdog stops every process of the login session, including commands that ignore
// SIGHUP.

// commandLine is the remote command: the script read from stdin by sh, whatever the login shell.
func commandLine(scriptLen int) string {
	return fmt.Sprintf(`exec sh -c 'eval "$(head -c %d)"'`, scriptLen)
}

// scriptHead pins pagers and locale, and defines the steps. Its prologue runs shell builtins
// only, but for the watchdog's fork. `wait` runs in a group with stderr to /dev/null because
// dash reports a child killed by a signal ("Terminated") on the shell's stderr after it.
const scriptHead = `exec 5<&0 0</dev/null
set -f
LC_ALL=C PAGER=cat SYSTEMD_PAGER= SYSTEMD_COLORS=0 PATH=${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/sbin:/sbin
export LC_ALL PAGER SYSTEMD_PAGER SYSTEMD_COLORS PATH
( trap '' HUP INT TERM
  while read -r _h_c _h_x; do
    case $_h_x in ''|0|*[!0-9]*) continue ;; esac
    case $_h_c in
    T) kill -TERM "$_h_x" ;;
    K) pkill -KILL -P "$_h_x"; kill -KILL "$_h_x" ;;
    esac
  done <&5
  pkill -TERM -s 0 || kill -TERM 0
  sleep 1
  pkill -KILL -s 0 || kill -KILL 0
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
_h_run() {
	_h_i=$1 _h_su=$2
	shift 2
	if [ "$_h_su" = 1 ] && [ "$_h_uid" != 0 ]; then set -- sudo -n -- "$@"; fi
	_h_b "$_h_i"
	if _h_look "$1"; then
		shift
		"$_h_p" "$@" &
		printf '\n%s P %s %s\n' "$_h_m" "$_h_i" $! >&2
		{ wait $!; } 2>/dev/null
		_h_e "$_h_i" 0 $?
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
		stat -L -c '%s %f %u %g %U %G' -- "$1"
		_h_rc=$?
		if [ "$_h_rc" = 0 ] && [ -f "$1" ]; then
			head -c "$2" -- "$1"
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

const scriptTail = `printf '%s Z\n' "$_h_m"
kill -KILL $_h_wd 2>/dev/null
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
	max     int64    // bytes of output kept; a file's target sends one more to show truncation
	timeout int      // stepCommand: seconds before the client stops it; 0 for none
	path    string   // stepFile
	glob    []string // stepGlob, stepGlobRead
	match   string   // stepGlobRead: a case pattern matching a superset of the glob's matches
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
			fmt.Fprintf(&b, "_h_run %d %d", i, su)
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
