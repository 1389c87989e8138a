package evidence

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/agent/store"
)

// benchBundle is a bundle of one target the size of a real Linux host's capture: a package
// list of 3000 lines, 1500 sysctls, an sshd -T of 120 lines, with a few lines changed.
func benchBundle(b *testing.B) []byte {
	st, err := store.Open(b.Context(), filepath.Join(b.TempDir(), "h.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	gen := func(n int, f func(i int) string) string {
		var s strings.Builder
		for i := range n {
			s.WriteString(f(i) + "\n")
		}
		return s.String()
	}
	arts := func(v int) map[string]artifact {
		return map[string]artifact{
			"packages/installed": {content: gen(3000, func(i int) string {
				if i%500 == 0 {
					return fmt.Sprintf("pkg%04d\t1.%d-%d\tamd64\tii", i, i, v)
				}
				return fmt.Sprintf("pkg%04d\t1.%d-1\tamd64\tii", i, i)
			})},
			"sysctl/all": {content: gen(1500, func(i int) string { return fmt.Sprintf("net.example.key%d = %d", i, i%7) })},
			"sshd/effective": {content: gen(120, func(i int) string {
				if i == 10 {
					return map[int]string{0: "passwordauthentication yes", 1: "passwordauthentication no"}[v]
				}
				return fmt.Sprintf("option%d value%d", i, i)
			})},
		}
	}
	bid := save(b, st, "web1", t0, "", arts(0))
	tag(b, st, bid, store.Before, "alice", "", t0)
	aid := save(b, st, "web1", t0.Add(time.Hour), "", arts(1))
	tag(b, st, aid, store.After, "bob", "", t0.Add(time.Hour))
	bundle, err := Build(b.Context(), st, incidentID, nil)
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if err := bundle.Write(&buf, nil); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkVerify compares a full verification with the floor: decompressing the archive and
// reading every entry into memory.
func BenchmarkVerify(b *testing.B) {
	archive := benchBundle(b)
	b.Run("read-only", func(b *testing.B) {
		b.SetBytes(int64(len(archive)))
		for b.Loop() {
			zr, _ := gzip.NewReader(bytes.NewReader(archive))
			tr := tar.NewReader(zr)
			for {
				if _, err := tr.Next(); err != nil {
					break
				}
				io.ReadAll(tr)
			}
		}
	})
	b.Run("verify", func(b *testing.B) {
		b.SetBytes(int64(len(archive)))
		for b.Loop() {
			if _, err := Verify(bytes.NewReader(archive), nil, DefaultLimits); err != nil {
				b.Fatal(err)
			}
		}
	})
}
