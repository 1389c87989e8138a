package rules

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/hardtrail/hardtrail/internal/tomlx"
)

// loadHost reads a fixture snapshot from testdata/rules/hosts/NAME (see its README).
func loadHost(t testing.TB, name string) *MemFacts {
	t.Helper()
	dir := filepath.Join("..", "testdata", "rules", "hosts", name)
	data, err := os.ReadFile(filepath.Join(dir, "facts.toml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Target   string `toml:"target"`
		Artifact []struct {
			Name        string   `toml:"name"`
			File        string   `toml:"file"`
			Command     []string `toml:"command"`
			ExitCode    int      `toml:"exit_code"`
			Truncated   bool     `toml:"truncated"`
			Unavailable string   `toml:"unavailable"`
			Mode        string   `toml:"mode"`
			Owner       string   `toml:"owner"`
			Group       string   `toml:"group"`
		} `toml:"artifact"`
	}
	if err := tomlx.Decode(filepath.Join(dir, "facts.toml"), data, &doc); err != nil {
		t.Fatal(err)
	}
	f := NewMemFacts(doc.Target)
	for _, a := range doc.Artifact {
		art := Artifact{Name: a.Name, Command: a.Command, ExitCode: a.ExitCode, Truncated: a.Truncated,
			Unavailable: a.Unavailable, Owner: a.Owner, Group: a.Group}
		if a.File != "" {
			if art.Content, err = os.ReadFile(filepath.Join(dir, a.File)); err != nil {
				t.Fatal(err)
			}
		}
		if a.Mode != "" {
			m, err := strconv.ParseUint(a.Mode, 8, 32)
			if err != nil {
				t.Fatalf("%s: mode %q: %v", a.Name, a.Mode, err)
			}
			art.Mode = fs.FileMode(m).Perm()
		}
		f.Artifacts[a.Name] = art
	}
	return f
}
