package store

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// ReadBlobs hands out contents before their check, in the order asked for, and Check reports
// what is wrong with any of them: the same errors Blob gives, whatever the mix.
func TestReadBlobs(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "h.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	big := strings.Repeat("permitrootlogin no\n", 1<<16)
	sv := save(t, s, "web1", map[string]string{"good": "permitrootlogin no\n", "big": big, "swapped": "x11forwarding no\n", "corrupt": "maxauthtries 3\n", "longer": "port 22\n"})
	snap, err := s.Get(ctx, sv.ID)
	if err != nil {
		t.Fatal(err)
	}
	hash := func(name string) string { e, _ := snap.Entry(name); return e.SHA256 }
	tamper := func(q string, args ...any) {
		t.Helper()
		if _, err := s.w.ExecContext(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	tamper(`UPDATE blobs SET data = ? WHERE hash = ?`, compress([]byte("x11forwarding on\n")), hash("swapped"))
	tamper(`UPDATE blobs SET data = ? WHERE hash = ?`, []byte("not deflate at all"), hash("corrupt"))
	tamper(`UPDATE blobs SET data = ? WHERE hash = ?`, compress([]byte("port 22\nport 2222\n")), hash("longer"))
	missing := strings.Repeat("0", 64)

	for _, tc := range []struct {
		name   string
		hashes []string
		want   []string // contents handed out before the check ("" for none)
		err    error    // what Check reports
		errHas string
	}{
		{"good twice and big", []string{hash("good"), hash("big"), hash("good")}, []string{"permitrootlogin no\n", big, "permitrootlogin no\n"}, nil, ""},
		{"none", nil, nil, nil, ""},
		{"altered content of the same size", []string{hash("good"), hash("swapped")}, []string{"permitrootlogin no\n", "x11forwarding on\n"}, ErrAltered, "does not match its hash"},
		{"not deflate", []string{hash("corrupt"), hash("good")}, []string{"", "permitrootlogin no\n"}, ErrAltered, "corrupt compressed data"},
		{"longer than recorded", []string{hash("longer")}, []string{""}, ErrAltered, "more than the 8 bytes recorded"},
		{"missing", []string{hash("good"), missing}, []string{"permitrootlogin no\n", ""}, ErrNotFound, missing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := s.ReadBlobs(ctx, tc.hashes...)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Data) != len(tc.hashes) {
				t.Fatalf("%d contents for %d hashes", len(c.Data), len(tc.hashes))
			}
			for i, w := range tc.want {
				if string(c.Data[i]) != w {
					t.Errorf("content %d: %.40q, want %.40q", i, c.Data[i], w)
				}
			}
			err = c.Check()
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) || !strings.Contains(errString(err), tc.errHas) {
				t.Errorf("Check: %v, want %v containing %q", err, tc.err, tc.errHas)
			}
			_, berr := s.Blobs(ctx, tc.hashes...)
			if (berr == nil) != (err == nil) || (err != nil && berr.Error() != err.Error()) {
				t.Errorf("Blobs: %v, Check: %v", berr, err)
			}
			for _, h := range tc.hashes {
				if _, err := s.Blob(ctx, h); tc.err == nil && err != nil {
					t.Errorf("Blob %s: %v", h, err)
				}
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
