package transport

import (
	"bytes"
	"testing"
)

// CapWriter keeps up to Max bytes and says when more came; Take hands the kept bytes on
// without a copy and keeps nothing written after.
func TestCapWriter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		max    int64
		writes []string
		want   string
		full   bool
	}{
		{"nothing", 10, nil, "", false},
		{"under", 10, []string{"abc", "def"}, "abcdef", false},
		{"at", 6, []string{"abc", "def"}, "abcdef", false},
		{"past", 4, []string{"abc", "def", "ghi"}, "abcd", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &CapWriter{Max: tc.max}
			for _, s := range tc.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", s, n, err)
				}
			}
			if got := w.Bytes(); string(got) != tc.want {
				t.Errorf("Bytes() = %q, want %q", got, tc.want)
			}
			got := w.Take()
			if string(got) != tc.want || w.Full() != tc.full {
				t.Errorf("Take() = %q, Full() = %v; want %q, %v", got, w.Full(), tc.want, tc.full)
			}
			w.Write([]byte("late"))
			if len(w.Bytes()) != 0 || string(got) != tc.want || w.Full() != tc.full {
				t.Errorf("after a late write: kept %q, taken %q, Full() = %v", w.Bytes(), got, w.Full())
			}
			if len(tc.writes) > 0 && !bytes.Equal(got, []byte(tc.want)) {
				t.Errorf("taken bytes changed: %q", got)
			}
		})
	}
}
