// Package version compares package version strings the way dpkg and rpm do, and reports
// version strings those package managers would refuse.
package version

import (
	"errors"
	"strconv"
	"strings"
)

// debian is a parsed dpkg version: [epoch:]upstream[-revision].
type debian struct {
	epoch    int64
	upstream string
	revision string
}

// parseDebian splits v as dpkg's parseversion does. It never fails: a malformed epoch is
// read as part of the upstream version, so that any two strings still compare
// deterministically. ValidateDebian reports what dpkg would refuse.
func parseDebian(v string) debian {
	v = strings.TrimSpace(v)
	var d debian
	if i := strings.IndexByte(v, ':'); i >= 0 {
		if e, err := strconv.ParseInt(v[:i], 10, 64); err == nil && e >= 0 {
			d.epoch = e
			v = v[i+1:]
		}
	}
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		d.upstream, d.revision = v[:i], v[i+1:]
	} else {
		d.upstream = v
	}
	return d
}

// CompareDebian compares two Debian package versions as `dpkg --compare-versions` does and
// returns -1, 0 or +1. The epoch compares numerically, then the upstream version, then the
// revision, each with dpkg's ordering: runs of non-digits compare character by character,
// with `~` before everything (even the end of the string), then the end of the string, then
// letters, then all other characters; runs of digits compare as numbers, so leading zeros
// do not count. A missing revision equals the revision "0". Malformed versions compare
// deterministically; check them with ValidateDebian first.
func CompareDebian(a, b string) int {
	x, y := parseDebian(a), parseDebian(b)
	switch {
	case x.epoch > y.epoch:
		return 1
	case x.epoch < y.epoch:
		return -1
	}
	if c := verrevcmp(x.upstream, y.upstream); c != 0 {
		return c
	}
	return verrevcmp(x.revision, y.revision)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// order is the weight of one character in a non-digit run. c is 0 past the end.
func order(c int) int {
	switch {
	case c == 0, c < 256 && isDigit(byte(c)):
		return 0
	case isAlpha(byte(c)):
		return c
	case c == '~':
		return -1
	default:
		return c + 256
	}
}

// verrevcmp compares an upstream version or a revision.
func verrevcmp(a, b string) int {
	at := func(s string, i int) int {
		if i < len(s) {
			return int(s[i])
		}
		return 0
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		firstDiff := 0
		for (i < len(a) && !isDigit(a[i])) || (j < len(b) && !isDigit(b[j])) {
			ac, bc := order(at(a, i)), order(at(b, j))
			if ac != bc {
				return sign(ac - bc)
			}
			i++
			j++
		}
		for i < len(a) && a[i] == '0' {
			i++
		}
		for j < len(b) && b[j] == '0' {
			j++
		}
		for i < len(a) && isDigit(a[i]) && j < len(b) && isDigit(b[j]) {
			if firstDiff == 0 {
				firstDiff = int(a[i]) - int(b[j])
			}
			i++
			j++
		}
		if i < len(a) && isDigit(a[i]) {
			return 1
		}
		if j < len(b) && isDigit(b[j]) {
			return -1
		}
		if firstDiff != 0 {
			return sign(firstDiff)
		}
	}
	return 0
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

// ValidateDebian reports why dpkg would refuse or warn about version v, in dpkg's words, or
// nil when v is a well-formed Debian version.
func ValidateDebian(v string) error {
	s := strings.TrimSpace(v)
	if s == "" {
		return errors.New("version string is empty")
	}
	if strings.ContainsAny(s, " \t\n\v\f\r") {
		return errors.New("version string has embedded spaces")
	}
	if i := strings.IndexByte(s, ':'); i >= 0 {
		ep := s[:i]
		if ep == "" {
			return errors.New("epoch in version is empty")
		}
		e, err := strconv.ParseInt(ep, 10, 64)
		var ne *strconv.NumError
		switch {
		case errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange):
			return errors.New("epoch in version is too big")
		case err != nil:
			return errors.New("epoch in version is not number")
		case e < 0:
			return errors.New("epoch in version is negative")
		case e > 1<<31-1:
			return errors.New("epoch in version is too big")
		}
		s = s[i+1:]
		if s == "" {
			return errors.New("nothing after colon in version number")
		}
	}
	up, rev := s, ""
	if i := strings.LastIndexByte(s, '-'); i >= 0 {
		up, rev = s[:i], s[i+1:]
		if rev == "" {
			return errors.New("revision number is empty")
		}
	}
	if up == "" {
		return errors.New("version number is empty")
	}
	if !isDigit(up[0]) {
		return errors.New("version number does not start with digit")
	}
	for i := 1; i < len(up); i++ {
		if c := up[i]; !isDigit(c) && !isAlpha(c) && !strings.ContainsRune(".-+~:", rune(c)) {
			return errors.New("invalid character in version number")
		}
	}
	for i := 0; i < len(rev); i++ {
		if c := rev[i]; !isDigit(c) && !isAlpha(c) && !strings.ContainsRune(".+~", rune(c)) {
			return errors.New("invalid character in revision number")
		}
	}
	return nil
}
