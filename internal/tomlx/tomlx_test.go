package tomlx

import (
	"strings"
	"testing"

	_ "github.com/hardtrail/hardtrail/internal/testutil" // the -update flag every test binary takes
)

type cfg struct {
	Name    string
	Timeout Duration
	Target  []struct {
		Name string
		Port int
	}
	Agent struct {
		Listen string
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"syntax", "name = \"a\"\nbad = \n", "f.toml:2:"},
		{"unknown top", "name = \"a\"\nnmae = 1\n", "f.toml:2:1: nmae: unknown key"},
		{"unknown in table", "[agent]\nlisten = \"x\"\n  lissen = \"y\"\n", "f.toml:3:3: agent.lissen: unknown key"},
		{"unknown in array table", "[[target]]\nname = \"a\"\n[[target]]\nname = \"b\"\nprot = 2\n", "f.toml:5:1: target.prot: unknown key"},
		{"wrong type", "name = 3\n", "f.toml:1:1: name: "},
		{"bare int duration", "timeout = 30\n", "f.toml:1:11: timeout: invalid duration \"30\" (write it with a unit"},
		{"bad duration", "timeout = \"30 parsecs\"\n", "invalid duration"},
		{"wrong type in array table", "[[target]]\nname = \"a\"\nport = \"x\"\n", "f.toml:3:1: target.port: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c cfg
			err := Decode("f.toml", []byte(tc.src), &c)
			if err == nil {
				t.Fatalf("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestDecodeOK(t *testing.T) {
	var c cfg
	if err := Decode("f.toml", []byte("name = \"x\"\ntimeout = \"5m\"\n[[target]]\nname = \"a\"\nport = 22\n"), &c); err != nil {
		t.Fatal(err)
	}
	if c.Timeout.Minutes() != 5 || c.Target[0].Port != 22 {
		t.Fatalf("decoded %+v", c)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("name = \"x\"\n[[target]]\nname = 1\n")
	f.Add("[agent]\nlisten=\"a\"\nzz=1")
	f.Fuzz(func(t *testing.T, src string) {
		var c cfg
		_ = Decode("f.toml", []byte(src), &c) // must not panic
	})
}

func TestLocateIndexed(t *testing.T) {
	src := "[agent]\nlisten = \"x\"\n\n[[target]]\nname = \"a\"\n\n[[target]]\nname = \"b\"\n  address = \"h\"\n\n[[profile]]\nname = \"p\"\n[[profile.source]]\nname = \"s1\"\n[[profile.source]]\nname = \"s2\"\n[[profile]]\nname = \"q\"\n[[profile.source]]\nname = \"t1\"\n"
	for _, tc := range []struct {
		key       []string
		line, col int
	}{
		{[]string{"agent", "listen"}, 2, 1},
		{[]string{"target", "1", "address"}, 9, 3},
		{[]string{"target", "1", "name"}, 8, 1},
		{[]string{"target", "0"}, 4, 3},
		{[]string{"target", "name"}, 5, 1},
		{[]string{"profile", "0", "source", "1", "name"}, 16, 1},
		{[]string{"profile", "1", "source", "0", "name"}, 20, 1},
		{[]string{"nope"}, 0, 0},
	} {
		l, c := Locate(src, tc.key)
		if l != tc.line || c != tc.col {
			t.Errorf("Locate(%v) = %d:%d, want %d:%d", tc.key, l, c, tc.line, tc.col)
		}
	}
}
