package transport

import (
	"bytes"
	"regexp"
)

// StripEscapes removes ANSI escape sequences: CSI (ESC [ ... final), OSC (ESC ] ... BEL or
// ESC \), and two-byte escapes: what a device's terminal session adds around its output.
func StripEscapes(b []byte) []byte {
	if bytes.IndexByte(b, 0x1b) < 0 {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != 0x1b {
			out = append(out, b[i])
			continue
		}
		if i+1 >= len(b) {
			break
		}
		switch b[i+1] {
		case '[':
			j := i + 2
			for j < len(b) && (b[j] < 0x40 || b[j] > 0x7e) {
				j++
			}
			i = j
		case ']':
			j := i + 2
			for j < len(b) && b[j] != 0x07 && !(b[j] == 0x1b && j+1 < len(b) && b[j+1] == '\\') {
				j++
			}
			if j < len(b) && b[j] == 0x1b {
				j++
			}
			i = j
		default:
			i++
		}
	}
	return out
}

// Shell says how to drive a device's interactive CLI: the prompt to find on the last line of
// output, the lines to send first (pager off), and, for CLIs with privilege levels, the line
// that asks for privileged mode.
type Shell struct {
	Prompt *regexp.Regexp
	Setup  []string
	// Enable, when set, is sent when the first prompt shows an unprivileged level (it ends in
	// '>'; '#' is privileged), followed by the target's enable secret at the device's password
	// prompt. The commands run only once the prompt is privileged.
	Enable string
}
