package diff

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// summary flattens a report: its status, the reverted lines of each hardened change
// ("hunk N back LINE text" numbered in current, "hunk N gone LINE text" numbered in after) and
// the drift ("drift -LINE text" numbered in after, "drift +LINE text" numbered in current).
func summary(r Report) []string {
	s := []string{string(r.Status)}
	for i, h := range r.Hardened {
		for _, l := range h.Back {
			s = append(s, fmt.Sprintf("hunk %d back %d %s", i+1, l.Line, l.Text))
		}
		for _, l := range h.Gone {
			s = append(s, fmt.Sprintf("hunk %d gone %d %s", i+1, l.Line, l.Text))
		}
	}
	for _, d := range r.Drift {
		for _, l := range d.Removed {
			s = append(s, fmt.Sprintf("drift -%d %s", l.Line, l.Text))
		}
		for _, l := range d.Added {
			s = append(s, fmt.Sprintf("drift +%d %s", l.Line, l.Text))
		}
	}
	return s
}

// lineOf returns the 1-based number of the nth (from 1) line of text equal to line.
func lineOf(t *testing.T, text, line string, nth int) int {
	t.Helper()
	for i, l := range strings.Split(text, "\n") {
		if l == line {
			if nth--; nth == 0 {
				return i + 1
			}
		}
	}
	t.Fatalf("line %q (#%d) not in text", line, nth)
	return 0
}

func readFixture(t *testing.T, name, side string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name, side))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func replace(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("%q not in text", old)
	}
	return strings.Replace(s, old, new, 1)
}

type regressCase struct {
	name    string
	current string
	want    func(cur string) []string
}

func runRegress(t *testing.T, before, after string, cases []regressCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := summary(Regression([]byte(before), []byte(after), []byte(tc.current)))
			if want := tc.want(tc.current); !reflect.DeepEqual(got, want) {
				t.Errorf("report:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
		})
	}
}

func TestRegressionSSHD(t *testing.T) {
	before, after := readFixture(t, "sshd-config", "a"), readFixture(t, "sshd-config", "b")
	// The remediation's changes: 1 PermitRootLogin, 2 MaxAuthTries, 3 PasswordAuthentication,
	// 4 X11Forwarding, 5 the appended AllowGroups block.
	at := func(line string) int { return lineOf(t, after, line, 1) }
	top := "# Managed by hardtrail test\nInclude /etc/ssh/extra.conf\n\n"
	runRegress(t, before, after, []regressCase{
		{"unchanged", after, func(string) []string { return []string{"holding"} }},
		{"missing final newline only", strings.TrimSuffix(after, "\n"), func(string) []string { return []string{"holding"} }},
		{"hardened line reverted",
			replace(t, after, "PermitRootLogin no\n", "#PermitRootLogin prohibit-password\n"),
			func(cur string) []string {
				return []string{"regressed",
					fmt.Sprintf("hunk 1 back %d #PermitRootLogin prohibit-password", lineOf(t, cur, "#PermitRootLogin prohibit-password", 1)),
					fmt.Sprintf("hunk 1 gone %d PermitRootLogin no", at("PermitRootLogin no"))}
			}},
		{"hardened line weakened otherwise",
			replace(t, after, "PermitRootLogin no\n", "PermitRootLogin yes\n"),
			func(cur string) []string {
				return []string{"regressed",
					fmt.Sprintf("hunk 1 gone %d PermitRootLogin no", at("PermitRootLogin no")),
					fmt.Sprintf("drift +%d PermitRootLogin yes", lineOf(t, cur, "PermitRootLogin yes", 1))}
			}},
		{"unrelated line changed",
			replace(t, after, "#Port 22\n", "Port 2222\n"),
			func(cur string) []string {
				return []string{"drifted",
					fmt.Sprintf("drift -%d #Port 22", at("#Port 22")),
					fmt.Sprintf("drift +%d Port 2222", lineOf(t, cur, "Port 2222", 1))}
			}},
		{"partial revert inside one change",
			replace(t, after, "AllowGroups sshusers\n", ""),
			func(string) []string {
				return []string{"regressed", fmt.Sprintf("hunk 5 gone %d AllowGroups sshusers", at("AllowGroups sshusers"))}
			}},
		{"partial revert of the remediation",
			replace(t, after, "X11Forwarding no\n", "X11Forwarding yes\n"),
			func(cur string) []string {
				return []string{"regressed",
					fmt.Sprintf("hunk 4 back %d X11Forwarding yes", lineOf(t, cur, "X11Forwarding yes", 1)),
					fmt.Sprintf("hunk 4 gone %d X11Forwarding no", at("X11Forwarding no"))}
			}},
		{"revert and unrelated change at once",
			replace(t, replace(t, after, "X11Forwarding no\n", "X11Forwarding yes\n"), "#Port 22\n", "Port 2222\n"),
			func(cur string) []string {
				return []string{"regressed",
					fmt.Sprintf("hunk 4 back %d X11Forwarding yes", lineOf(t, cur, "X11Forwarding yes", 1)),
					fmt.Sprintf("hunk 4 gone %d X11Forwarding no", at("X11Forwarding no")),
					fmt.Sprintf("drift -%d #Port 22", at("#Port 22")),
					fmt.Sprintf("drift +%d Port 2222", lineOf(t, cur, "Port 2222", 1))}
			}},
		{"hardened lines moved by insertions above",
			top + after,
			func(string) []string {
				return []string{"drifted",
					"drift +1 # Managed by hardtrail test", "drift +2 Include /etc/ssh/extra.conf", "drift +3 "}
			}},
		{"revert below insertions is numbered in current",
			top + replace(t, after, "MaxAuthTries 3\n", "#MaxAuthTries 6\n"),
			func(cur string) []string {
				return []string{"regressed",
					fmt.Sprintf("hunk 2 back %d #MaxAuthTries 6", lineOf(t, cur, "#MaxAuthTries 6", 1)),
					fmt.Sprintf("hunk 2 gone %d MaxAuthTries 3", at("MaxAuthTries 3")),
					"drift +1 # Managed by hardtrail test", "drift +2 Include /etc/ssh/extra.conf", "drift +3 "}
			}},
		{"hardened setting moved far from its place",
			replace(t, after, "PermitRootLogin no\n", "") + "PermitRootLogin no\n",
			func(cur string) []string {
				// sshd takes the first value it reads, so a moved setting may no longer count.
				return []string{"regressed",
					fmt.Sprintf("hunk 1 gone %d PermitRootLogin no", at("PermitRootLogin no")),
					fmt.Sprintf("drift +%d PermitRootLogin no", lineOf(t, cur, "PermitRootLogin no", 1))}
			}},
		{"hardened lines reordered within their change",
			replace(t, after, "# Hardening for INC-2026-0042\nAllowGroups sshusers\n", "AllowGroups sshusers\n# Hardening for INC-2026-0042\n"),
			func(cur string) []string {
				const c = "# Hardening for INC-2026-0042"
				return []string{"drifted", fmt.Sprintf("drift -%d %s", at(c), c), fmt.Sprintf("drift +%d %s", lineOf(t, cur, c, 1), c)}
			}},
		{"all reverted", before, func(cur string) []string {
			return []string{"regressed",
				"hunk 1 back 33 #PermitRootLogin prohibit-password", "hunk 1 gone 33 PermitRootLogin no",
				"hunk 2 back 35 #MaxAuthTries 6", "hunk 2 gone 35 MaxAuthTries 3",
				"hunk 3 back 57 #PasswordAuthentication yes", "hunk 3 gone 57 PasswordAuthentication no",
				"hunk 4 back 90 X11Forwarding yes", "hunk 4 gone 90 X11Forwarding no",
				"hunk 5 gone 123 ", "hunk 5 gone 124 # Hardening for INC-2026-0042", "hunk 5 gone 125 AllowGroups sshusers"}
		}},
	})
}

func TestRegressionIptables(t *testing.T) {
	before, after := readFixture(t, "iptables-save", "a"), readFixture(t, "iptables-save", "b")
	const telnet = "-A INPUT -p tcp -m tcp --dport 23 -j ACCEPT"
	const https = "-A INPUT -p tcp -m tcp --dport 443 -j ACCEPT\n"
	runRegress(t, before, after, []regressCase{
		{"removed rule back at the end of its chain",
			replace(t, after, https, https+telnet+"\n"),
			func(cur string) []string {
				return []string{"regressed", fmt.Sprintf("hunk 2 back %d %s", lineOf(t, cur, telnet, 1), telnet)}
			}},
		{"policy reverted",
			replace(t, after, ":INPUT DROP [0:0]\n", ":INPUT ACCEPT [0:0]\n"),
			func(string) []string {
				return []string{"regressed",
					"hunk 1 back 3 :INPUT ACCEPT [0:0]", "hunk 1 gone 3 :INPUT DROP [0:0]"}
			}},
		{"repeated boilerplate added elsewhere is drift",
			after + "*raw\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n",
			func(cur string) []string {
				n := strings.Count(after, "\n")
				return []string{"drifted",
					fmt.Sprintf("drift +%d *raw", n+1), fmt.Sprintf("drift +%d :PREROUTING ACCEPT [0:0]", n+2), fmt.Sprintf("drift +%d COMMIT", n+3)}
			}},
		{"counters changed",
			replace(t, after, ":OUTPUT ACCEPT [0:0]\n", ":OUTPUT ACCEPT [12:3400]\n"),
			func(string) []string {
				return []string{"drifted", "drift -5 :OUTPUT ACCEPT [0:0]", "drift +5 :OUTPUT ACCEPT [12:3400]"}
			}},
	})
}

// TestRegressionRepeatedBlocks has the same lines in two blocks; only bob's was hardened.
func TestRegressionRepeatedBlocks(t *testing.T) {
	const before = "Match User alice\n    PasswordAuthentication yes\n    X11Forwarding no\n" +
		"Match User bob\n    PasswordAuthentication yes\n    X11Forwarding no\n"
	after := strings.Replace(before, "bob\n    PasswordAuthentication yes", "bob\n    PasswordAuthentication no", 1)
	runRegress(t, before, after, []regressCase{
		{"the other block changed the same way",
			strings.Replace(after, "yes", "no", 1),
			func(string) []string {
				return []string{"drifted", "drift -2     PasswordAuthentication yes", "drift +2     PasswordAuthentication no"}
			}},
		{"hardened block reverted",
			strings.Replace(after, "bob\n    PasswordAuthentication no", "bob\n    PasswordAuthentication yes", 1),
			func(string) []string {
				return []string{"regressed",
					"hunk 1 back 5     PasswordAuthentication yes", "hunk 1 gone 5     PasswordAuthentication no"}
			}},
		{"other block removed",
			strings.Replace(after, "Match User alice\n    PasswordAuthentication yes\n    X11Forwarding no\n", "", 1),
			func(string) []string {
				return []string{"drifted",
					"drift -1 Match User alice", "drift -2     PasswordAuthentication yes", "drift -3     X11Forwarding no"}
			}},
		{"blocks swapped values",
			"Match User alice\n    PasswordAuthentication no\n    X11Forwarding no\n" +
				"Match User bob\n    PasswordAuthentication yes\n    X11Forwarding no\n",
			func(string) []string {
				return []string{"regressed",
					"hunk 1 back 5     PasswordAuthentication yes", "hunk 1 gone 5     PasswordAuthentication no",
					"drift -2     PasswordAuthentication yes", "drift +2     PasswordAuthentication no"}
			}},
		{"hardened line moved past its neighbour",
			strings.Replace(after, "bob\n    PasswordAuthentication no\n    X11Forwarding no\n", "bob\n    X11Forwarding no\n    PasswordAuthentication no\n", 1),
			func(string) []string {
				// Order can matter (the first value wins), so only its own place counts.
				return []string{"regressed", "hunk 1 gone 5     PasswordAuthentication no", "drift +6     PasswordAuthentication no"}
			}},
	})
}

func TestRegressionNoRemediation(t *testing.T) {
	r := Regression([]byte("a\n"), []byte("a\n"), []byte("b\n"))
	if r.Status != Drifted || len(r.Hardened) != 0 || len(r.Drift) != 1 {
		t.Errorf("got %+v", r)
	}
	r = Regression(nil, []byte("PermitRootLogin no\n"), nil)
	if r.Status != Regressed || len(r.Hardened) != 1 || len(r.Hardened[0].Gone) != 1 {
		t.Errorf("artifact gone: got %+v", r)
	}
}

// TestRegressionProperties undoes random subsets of random remediations of config-like text
// full of repeated lines. Current equal to after holds; current equal to before reverts every
// hardened change; the status is regressed exactly when something was undone; and every line
// that differs between after and current is reported once, as a reverted line or as drift.
func TestRegressionProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for i := range 5000 {
		a := configText(r, r.IntN(60))
		before, after := joined(a, false), joined(edited(r, a, 1+r.IntN(6)), false)
		if bytes.Equal(before, after) {
			continue
		}
		if rep := Regression(before, after, after); rep.Status != Holding || len(rep.Drift) > 0 {
			t.Fatalf("case %d: current == after gave %+v", i, rep)
		}
		rep := Regression(before, after, before)
		for k, h := range rep.Hardened {
			if !h.Reverted() {
				t.Fatalf("case %d: current == before, but change %d is not reverted\nbefore=%q\nafter=%q", i, k+1, before, after)
			}
		}

		// Undo a random subset of the remediation's changes.
		ta, tb := split(after), split(before)
		da, db := compare(&ta, &tb)
		var cur []byte
		at, undone := 0, false
		for _, c := range changes(da, db) {
			cur = append(cur, ta.data[ta.start(at):ta.start(c.a)]...)
			if r.IntN(2) == 0 {
				undone = true
				cur = append(cur, tb.data[tb.start(c.b):tb.start(c.b+c.ins)]...)
			} else {
				cur = append(cur, ta.data[ta.start(c.a):ta.start(c.a+c.del)]...)
			}
			at = c.a + c.del
		}
		cur = append(cur, ta.data[ta.start(at):]...)
		rep = Regression(before, after, cur)
		if (rep.Status == Regressed) != undone {
			t.Fatalf("case %d: status %s, undone %v\nbefore=%q\nafter=%q\ncurrent=%q", i, rep.Status, undone, before, after, cur)
		}
		added, removed := Stat(after, cur)
		for _, h := range rep.Hardened {
			added -= len(h.Back)
			removed -= len(h.Gone)
		}
		for _, d := range rep.Drift {
			added -= len(d.Added)
			removed -= len(d.Removed)
		}
		if added != 0 || removed != 0 {
			t.Fatalf("case %d: %d added and %d removed lines unaccounted for", i, added, removed)
		}
	}
}
