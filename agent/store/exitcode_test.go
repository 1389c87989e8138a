package store

import (
	"encoding/json"
	"strings"
	"testing"
)

// An entry with no exit code (a timed-out command, a file) says none in its JSON, never 0; a
// manifest written before exit codes could be absent still reads, its 0 kept as 0.
func TestExitCodeAbsent(t *testing.T) {
	raw, err := json.Marshal(ArtifactEntry{Name: "slow", Command: []string{"sleep", "1"}, Unavailable: "timed out after 1s"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "exit_code") {
		t.Errorf("a timed-out entry records an exit code: %s", raw)
	}
	var old ArtifactEntry
	if err := json.Unmarshal([]byte(`{"name":"a","sha256":"x","size":0,"source":"a","exit_code":0,"duration_ms":1}`), &old); err != nil {
		t.Fatal(err)
	}
	if old.ExitCode == nil || *old.ExitCode != 0 {
		t.Errorf("an old entry's exit code 0 reads as %v", old.ExitCode)
	}
	again, _ := json.Marshal(old)
	if !strings.Contains(string(again), `"exit_code":0`) {
		t.Errorf("an old entry does not keep its exit code: %s", again)
	}
	zero := 0
	a := &Manifest{Artifacts: []ArtifactEntry{{Name: "a"}}}
	b := &Manifest{Artifacts: []ArtifactEntry{{Name: "a", ExitCode: &zero}}}
	if equal(a, b) {
		t.Error("no exit code equals exit code 0")
	}
}
