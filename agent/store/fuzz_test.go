package store

import (
	"bytes"
	"compress/flate"
	"strings"
	"testing"
)

// A recorded head is read back from the store, which may have been altered: parsing never
// panics, and what parses prints back as the same text with the digest of that text.
func FuzzParseHead(f *testing.F) {
	f.Add(HeadFormat + "\n")
	f.Add(HeadFormat + "\nlinks 3 " + Hash(nil) + "\nsnapshots/web1 2 " + Hash([]byte("x")) + "\n")
	f.Add(HeadFormat + "\nb 1 x\na 1 y\n")
	f.Add("hardtrail-head/2\n")
	f.Fuzz(func(t *testing.T, text string) {
		h, err := parseHead(text)
		if err != nil {
			return
		}
		if h.Text() != text || h.Digest != Hash([]byte(text)) {
			t.Fatalf("%q parsed to %+v", text, h)
		}
	})
}

// Stored compressed data may have been altered: inflate never returns more than its limit,
// and what it returns from a valid stream is that stream's content.
func FuzzInflate(f *testing.F) {
	f.Add(compress([]byte("permitrootlogin no\n")), int64(19))
	f.Add(deflateBomb(1<<20), int64(100))
	f.Add([]byte{0x01, 0x00}, int64(0))
	f.Add(append(compress([]byte("x")), 0), int64(1))
	f.Fuzz(func(t *testing.T, b []byte, limit int64) {
		if limit < 0 || limit > 1<<20 {
			return
		}
		out, err := inflate(b, limit)
		if err != nil {
			return
		}
		if int64(len(out)) > limit {
			t.Fatalf("%d bytes out, limit %d", len(out), limit)
		}
		want, err := flateAll(b)
		if err != nil || !bytes.Equal(out, want) {
			t.Fatalf("inflate gave %d bytes, flate %d (%v)", len(out), len(want), err)
		}
	})
}

func flateAll(b []byte) ([]byte, error) {
	var out bytes.Buffer
	_, err := out.ReadFrom(flate.NewReader(bytes.NewReader(b)))
	return out.Bytes(), err
}

// FuzzParseLocation: any store value parses or fails without panicking, and a password given
// in a URL's userinfo or a key=value password never shows in the location's name.
func FuzzParseLocation(f *testing.F) {
	for _, s := range []string{"postgres://u:pw@h/db", "host=/tmp dbname=h password=secret", "mysql://x", "h.db", "postgresql://[::1", "password='a b' host=x"} {
		f.Add(s, "s3cretpw")
	}
	f.Fuzz(func(t *testing.T, v, pw string) {
		if l, err := ParseLocation(v); err == nil {
			_ = l.String()
		}
		if len(pw) < 6 || !isAlnum(pw) || strings.Contains(v, pw) {
			return
		}
		for _, dsn := range []string{"postgres://u:" + pw + "@h/db", "host=/tmp password=" + pw + " dbname=h", "password='" + pw + "' dbname=h"} {
			l, err := ParseLocation(dsn)
			if err != nil {
				t.Fatalf("%q: %v", dsn, err)
			}
			if strings.Contains(l.String(), pw) {
				t.Fatalf("%q shows as %q", dsn, l.String())
			}
		}
	})
}

func isAlnum(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
