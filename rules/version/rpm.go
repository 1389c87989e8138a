package version

import (
	"errors"
	"fmt"
	"strings"
)

// evr is a parsed RPM [epoch:]version[-release]. A missing epoch or release is marked, not
// defaulted, because rpm treats them differently.
type evr struct {
	epoch, version, release string
	hasRelease              bool
}

// parseEVR splits s as rpm does: the epoch is the leading run of digits when a colon
// follows it, the release is what follows the last '-'.
func parseEVR(s string) evr {
	var e evr
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i < len(s) && s[i] == ':' {
		e.epoch = s[:i]
		s = s[i+1:]
	}
	if e.epoch == "" {
		e.epoch = "0"
	}
	if j := strings.LastIndexByte(s, '-'); j >= 0 {
		e.version, e.release, e.hasRelease = s[:j], s[j+1:], true
	} else {
		e.version = s
	}
	return e
}

// CompareRPM compares two RPM [epoch:]version[-release] strings as rpm does and returns
// -1, 0 or +1. A missing epoch counts as 0; the release takes part only when both sides
// have one, so "1.0" equals "1.0-3". Each part compares with rpmvercmp.
func CompareRPM(a, b string) int {
	x, y := parseEVR(a), parseEVR(b)
	if c := rpmvercmp(x.epoch, y.epoch); c != 0 {
		return c
	}
	if c := rpmvercmp(x.version, y.version); c != 0 {
		return c
	}
	if x.hasRelease && y.hasRelease {
		return rpmvercmp(x.release, y.release)
	}
	return 0
}

// rpmvercmp compares one version or release string with rpm's algorithm: strings are cut
// into runs of ASCII digits and runs of ASCII letters, everything else separates runs; '~'
// sorts before everything, even the end of the string; '^' sorts after the end of the
// string but before any further run; digit runs compare numerically and beat letter runs;
// letter runs compare as bytes; when all runs tie, the string with runs left over wins.
func rpmvercmp(a, b string) int {
	if a == b {
		return 0
	}
	isAlnum := func(c byte) bool { return isDigit(c) || isAlpha(c) }
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for i < len(a) && !isAlnum(a[i]) && a[i] != '~' && a[i] != '^' {
			i++
		}
		for j < len(b) && !isAlnum(b[j]) && b[j] != '~' && b[j] != '^' {
			j++
		}
		ca, cb := byteAt(a, i), byteAt(b, j)
		if ca == '~' || cb == '~' {
			if ca != '~' {
				return 1
			}
			if cb != '~' {
				return -1
			}
			i++
			j++
			continue
		}
		if ca == '^' || cb == '^' {
			if i == len(a) {
				return -1
			}
			if j == len(b) {
				return 1
			}
			if ca != '^' {
				return 1
			}
			if cb != '^' {
				return -1
			}
			i++
			j++
			continue
		}
		if i == len(a) || j == len(b) {
			break
		}
		si, sj := i, j
		num := isDigit(a[i])
		class := isAlpha
		if num {
			class = isDigit
		}
		for i < len(a) && class(a[i]) {
			i++
		}
		for j < len(b) && class(b[j]) {
			j++
		}
		if sj == j {
			// The runs are of different kinds: a number is newer than letters.
			if num {
				return 1
			}
			return -1
		}
		ra, rb := a[si:i], b[sj:j]
		if num {
			ra, rb = strings.TrimLeft(ra, "0"), strings.TrimLeft(rb, "0")
			if len(ra) != len(rb) {
				if len(ra) > len(rb) {
					return 1
				}
				return -1
			}
		}
		if c := strings.Compare(ra, rb); c != 0 {
			return c
		}
	}
	switch {
	case i == len(a) && j == len(b):
		return 0
	case i == len(a):
		return -1
	}
	return 1
}

func byteAt(s string, i int) byte {
	if i < len(s) {
		return s[i]
	}
	return 0
}

// ValidateRPM reports why s is not a well-formed RPM [epoch:]version[-release], or nil.
// Version and release may hold ASCII letters, digits and the characters . _ + ~ ^ only,
// which is what rpmbuild accepts in Version and Release tags.
func ValidateRPM(s string) error {
	if s == "" {
		return errors.New("version string is empty")
	}
	rest := s
	if i := strings.IndexByte(rest, ':'); i >= 0 {
		ep := rest[:i]
		if ep == "" {
			return errors.New("epoch in version is empty")
		}
		for k := 0; k < len(ep); k++ {
			if !isDigit(ep[k]) {
				return errors.New("epoch in version is not number")
			}
		}
		rest = rest[i+1:]
	}
	ver, rel, hasRel := rest, "", false
	if j := strings.LastIndexByte(rest, '-'); j >= 0 {
		ver, rel, hasRel = rest[:j], rest[j+1:], true
	}
	if ver == "" {
		return errors.New("version number is empty")
	}
	if hasRel && rel == "" {
		return errors.New("release is empty")
	}
	if err := rpmChars("version", ver); err != nil {
		return err
	}
	return rpmChars("release", rel)
}

func rpmChars(what, s string) error {
	for k := 0; k < len(s); k++ {
		if c := s[k]; !isDigit(c) && !isAlpha(c) && !strings.ContainsRune("._+~^", rune(c)) {
			return fmt.Errorf("invalid character %q in %s", c, what)
		}
	}
	return nil
}
