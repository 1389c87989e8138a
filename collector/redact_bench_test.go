package collector

import (
	"os"
	"path/filepath"
	"testing"
)

func BenchmarkRedact(b *testing.B) {
	var text []byte
	files, _ := filepath.Glob("/usr/share/common-licenses/*")
	for _, f := range files {
		c, _ := os.ReadFile(f)
		text = append(text, c...)
	}
	r := testRedactor(b, "k")
	b.SetBytes(int64(len(text)))
	// The regexps alone, as a floor to compare the hinted search with.
	b.Run("regexps-unhinted", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			for _, p := range secretPatterns() {
				r.replace(text, p.re.FindAllSubmatchIndex(text, -1))
			}
		}
	})
	b.Run("redact", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			r.Redact(text, nil)
		}
	})
}
