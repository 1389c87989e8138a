package main

import (
	"bytes"
	"cmp"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/internal/testutil"
)

// A store on a read-only mount (an auditor's copy on read-only media) is read as it is: verify,
// log and diff work and leave it unchanged; a snapshot is refused; a copy with a write-ahead
// log beside it is refused with what to do, since reading it without that log would show less
// than it holds. Each command runs in a mount namespace of its own where the store's directory
// is bound read-only, so even root cannot write there.
func TestReadOnlyStoreCopy(t *testing.T) {
	testutil.Root(t)
	unshare, mount := testutil.Tool(t, "unshare"), testutil.Tool(t, "mount")
	dir := t.TempDir()
	storeDir, conf, cfg := filepath.Join(dir, "s"), filepath.Join(dir, "sshd_config"), filepath.Join(dir, "c.toml")
	db := filepath.Join(storeDir, "h.db")
	testutil.Must(t, os.WriteFile(cfg, fmt.Appendf(nil, "[[profile]]\nname = \"f\"\n[[profile.source]]\nname = \"sshd/config\"\nfiles = [%q]\n\n[[target]]\nname = \"t\"\nprofiles = [\"f\"]\n", conf), 0o644))
	testutil.Must(t, os.WriteFile(conf, []byte("PermitRootLogin yes\n"), 0o644))
	mustHT(t, "--config", cfg, "--store", db, "snapshot")
	testutil.Must(t, os.WriteFile(conf, []byte("PermitRootLogin no\n"), 0o644))
	mustHT(t, "--config", cfg, "--store", db, "snapshot")
	before := mustHT(t, "--config", cfg, "--store", db, "store", "verify")
	files := func() string {
		var b strings.Builder
		entries, err := os.ReadDir(storeDir)
		testutil.Must(t, err)
		for _, e := range entries {
			data, err := os.ReadFile(filepath.Join(storeDir, e.Name()))
			testutil.Must(t, err)
			fmt.Fprintf(&b, "%s %x\n", e.Name(), data)
		}
		return b.String()
	}
	stored := files()
	ro := func(args ...string) (string, string, int) {
		t.Helper()
		c := exec.Command(unshare, append([]string{"--mount", "--propagation", "private", "sh", "-c",
			`"$MOUNT" -o bind,ro "$D" "$D" || exit 99; exec "$HT" --config "$CFG" --store "$D/h.db" "$@"`, "sh"}, args...)...)
		c.Env = append(cleanEnv(), "MOUNT="+mount, "D="+storeDir, "HT="+binary, "CFG="+cfg)
		var stdout, stderr bytes.Buffer
		c.Stdout, c.Stderr = &stdout, &stderr
		err := c.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		code := c.ProcessState.ExitCode()
		if code == 99 {
			t.Fatalf("bind-mounting %s read-only failed: %s", storeDir, stderr.String())
		}
		return stdout.String(), stderr.String(), code
	}
	if out, errOut, code := ro("store", "verify"); code != 0 || out != before {
		t.Errorf("store verify on the read-only mount: exit %d\n%s%s\nwant, as on the writable store:\n%s", code, out, errOut, before)
	}
	if out, errOut, code := ro("log"); code != 0 || strings.Count(out, "\n") != 2 {
		t.Errorf("log on the read-only mount: exit %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code := ro("diff", "t~1", "t"); code != 0 || !strings.Contains(out, "+PermitRootLogin no") {
		t.Errorf("diff on the read-only mount: exit %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := ro("snapshot"); code != 2 || !strings.Contains(errOut, "not writable") {
		t.Errorf("snapshot on the read-only mount: exit %d, want 2 naming the store not writable\n%s", code, errOut)
	}
	if got := files(); got != stored {
		t.Errorf("the read-only runs changed the store's directory:\n%s\nwas:\n%s", got, stored)
	}
	// A copy taken while a writer had it open carries a write-ahead log.
	testutil.Must(t, os.WriteFile(db+"-wal", nil, 0o600))
	if _, errOut, code := ro("log"); code != 2 || !strings.Contains(errOut, "write-ahead log") {
		t.Errorf("log of a read-only copy with a -wal beside it: exit %d, want 2 naming the log\n%s", code, errOut)
	}
	// A copy of an older schema cannot be upgraded where it takes no writes.
	testutil.Must(t, os.Remove(db+"-wal"))
	conn, err := sql.Open("sqlite", "file:"+db)
	testutil.Must(t, err)
	_, err = conn.Exec(fmt.Sprintf("PRAGMA user_version = %d", store.SchemaSteps()-1))
	testutil.Must(t, cmp.Or(err, conn.Close()))
	if _, errOut, code := ro("log"); code != 2 || !strings.Contains(errOut, "older than this hardtrail's") {
		t.Errorf("log of a read-only copy of an older schema: exit %d, want 2 saying it cannot be upgraded\n%s", code, errOut)
	}
}
