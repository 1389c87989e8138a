package ssh

import (
	"bytes"
	"testing"
)

func TestCleanTerminal(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"crlf", "a\r\nb\r\n", "a\nb\n"},
		{"ios pager erased", "line 1\r\n --More-- \b\b\b\b\b\b\b\b\b\b          \b\b\b\b\b\b\b\b\b\bline 2\r\n", "line 1\nline 2\n"},
		{"asa pager erased", "a\r\n<--- More --->\r              \rb\r\n", "a\nb\n"},
		{"pager not erased", "a\r\n--More--\r\nb\r\n", "a\n\nb\n"},
		{"pager remnant before text", "a\r\n--More-- b\r\n", "a\nb\n"},
		{"junos pager", "a\n---(more 45%)---\r                \rb\n", "a\nb\n"},
		{"huawei pager", "a\r\n  ---- More ----\r                \rb\r\n", "a\nb\n"},
		{"huawei pager not erased", "a\r\n  ---- More ----b\r\n", "a\nb\n"},
		{"huawei pager erased by cursor moves", "a\r\n  ---- More ----\x1b[16D                \x1b[16D b indented\r\n", "a\n b indented\n"},
		{"cursor moves back over text", "abc\x1b[2DXY\r\n", "aXY\n"},
		{"colours", "\x1b[1;32mok\x1b[0m\r\n", "ok\n"},
		{"title", "\x1b]0;title\x07text\n", "text\n"},
		{"redrawn prompt", "\rFGT-HQ # show\r\n", "FGT-HQ # show\n"},
		{"backspace typo", "shox\b \bw\r\n", "show\n"},
		{"tabs kept", "a\tb\r\n", "a\tb\n"},
		{"no final newline", "prompt# ", "prompt# "},
		{"nul dropped", "a\x00b\n", "ab\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := string(cleanTerminal([]byte(c.in))); got != c.want {
				t.Errorf("cleanTerminal(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestCommandOutput(t *testing.T) {
	cases := []struct{ name, raw, line, want string }{
		{"echo removed", "show version\r\nIOS 17\r\n", "show version", "IOS 17\n"},
		{"echo behind a redrawn prompt", "\rrtr1#show version\r\nIOS 17\r\n", "show version", "IOS 17\n"},
		{"no echo", "IOS 17\r\n", "show version", "IOS 17\n"},
		{"only the echo", "show version", "show version", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := string(commandOutput([]byte(c.raw), c.line)); got != c.want {
				t.Errorf("commandOutput = %q, want %q", got, c.want)
			}
		})
	}
}

func TestRefused(t *testing.T) {
	cases := []struct {
		out  string
		want bool
	}{
		{"               ^\n% Invalid input detected at '^' marker.\n", true},
		{"\n           ^\nERROR: % Invalid input detected at '^' marker.\n", true},
		{"                  ^\nsyntax error, expecting <command>.\n", true},
		{"Command fail. Return code -61\n", true},
		{"Unknown command: bogus\n", true},
		{"bad command name bogus (line 1 column 2)\n", true},
		{"              ^\nError: Unrecognized command found at '^' position.\n", true},
		{"Building configuration...\n\nCurrent configuration : 5 bytes\n", false},
		{"a\nb\nc\n% Invalid input on the fourth line\n", false},
		{"", false},
	}
	for _, c := range cases {
		if got := refused([]byte(c.out)); got != c.want {
			t.Errorf("refused(%q) = %v, want %v", c.out, got, c.want)
		}
	}
}

// FuzzCleanTerminal: any bytes a device sends clean up without panicking, into text without
// carriage returns, backspaces or escapes, and cleaning is idempotent.
func FuzzCleanTerminal(f *testing.F) {
	for _, s := range []string{"a\r\nb", " --More-- \b\b\b  \b\b\bx", "\x1b[1;3", "\x1b]0;t", "<--- More --->\r   \r", "\b\b\r\r\n", "  ---- More ----\x1b[16D    \x1b[16D x", "\x1b[D\x1b[999D"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out := cleanTerminal(b)
		if bytes.ContainsAny(out, "\r\b\x1b") {
			t.Fatalf("cleanTerminal(%q) = %q keeps control characters", b, out)
		}
		if again := cleanTerminal(out); !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %q -> %q -> %q", b, out, again)
		}
		commandOutput(b, "show running-config")
		refused(out)
	})
}
