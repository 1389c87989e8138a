package store

import (
	"path/filepath"
	"strings"
	"testing"
)

// With the cache on, a blob whose stored content was altered is still refused: only content
// that matches its hash is kept, and what the cache hands out is a copy.
func TestCacheKeepsOnlyCheckedContent(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "h.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sv := save(t, s, "web1", map[string]string{"good": "permitrootlogin no\n", "bad": "x11forwarding no\n"})
	snap, err := s.Get(ctx, sv.ID)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := snap.Entry("good")
	bad, _ := snap.Entry("bad")
	if _, err := s.w.ExecContext(ctx, `UPDATE blobs SET data = ? WHERE hash = ?`, compress([]byte("x11forwarding on\n")), bad.SHA256); err != nil {
		t.Fatal(err)
	}
	s.CacheBlobs(1 << 20)
	if err := s.Prefetch(ctx, []string{good.SHA256, bad.SHA256}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Blob(ctx, bad.SHA256); err == nil || !strings.Contains(err.Error(), "does not match its hash") {
		t.Fatalf("altered blob read through the cache: %v", err)
	}
	b, err := s.Blob(ctx, good.SHA256)
	if err != nil || string(b) != "permitrootlogin no\n" {
		t.Fatalf("good blob: %q %v", b, err)
	}
	b[0] = 'X'
	if _, err := s.w.ExecContext(ctx, `DELETE FROM blobs WHERE hash = ?`, good.SHA256); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Blob(ctx, good.SHA256); err != nil || string(b) != "permitrootlogin no\n" {
		t.Fatalf("cached blob: %q %v, want the content as checked", b, err)
	}
}
