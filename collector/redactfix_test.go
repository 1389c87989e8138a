package collector

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hardtrail/hardtrail/internal/testutil"
)

// Every fixture file, redacted as a files source reads it: no secret left, every known
// non-secret line as captured.
func TestRedactFixtures(t *testing.T) {
	fx := testutil.LoadRedactFixtures(t)
	r := testRedactor(t, "k")
	src := &Source{Name: "f", Files: []string{"/x"}}
	if err := src.compile(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, name := range fx.Files() {
		in, err := os.ReadFile(filepath.Join(fx.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		out, _ := src.finish(r.forSource(src, "/etc/"+name), in)
		fx.CheckStored(t, name, in, out)
		if again, _ := src.finish(r.forSource(src, "/etc/"+name), out); string(again) != string(out) {
			t.Errorf("%s: redaction is not idempotent", name)
		}
		n += len(fx.Secrets[name])
		if testing.Verbose() {
			t.Logf("%s:\n%s", name, out)
		}
	}
	if n < 60 {
		t.Fatalf("only %d fixture secrets", n)
	}
}
