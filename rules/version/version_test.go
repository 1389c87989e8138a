package version

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/hardtrail/hardtrail/internal/testutil"
)

// debianCases are the tricky orderings; TestCompareDebianAgainstDpkg checks them with
// dpkg too.
var debianCases = []struct {
	a, b string
	want int
}{
	{"1.0", "1.0", 0},
	{"1.0", "1.1", -1},
	{"1.10", "1.9", 1},
	{"1.01", "1.1", 0},             // digits compare numerically
	{"1.001", "1.1", 0},            // leading zeros
	{"1.0", "1.0-0", 0},            // missing revision is "0"
	{"1.0-0", "1.0-", 0},           // empty revision
	{"1:1.0", "2.0", 1},            // epoch wins
	{"0:1.0", "1.0", 0},            // explicit zero epoch
	{"1:0.1", "0:9.9", 1},          //
	{"10:1", "9:2", 1},             // epoch compares numerically
	{"1.0~rc1", "1.0", -1},         // ~ before the end
	{"1.0~rc1", "1.0~rc2", -1},     //
	{"1.0~~", "1.0~", -1},          // ~~ before ~
	{"1.0~", "1.0", -1},            //
	{"1.0~~a", "1.0~~", 1},         //
	{"1.0+1", "1.0", 1},            // + after the end
	{"1.0+b1", "1.0", 1},           //
	{"1.0a", "1.0", 1},             // letter after the end
	{"1.0a", "1.0+", -1},           // letters before non-letters
	{"1.0A", "1.0a", -1},           // ASCII order among letters
	{"1.0.", "1.0+", 1},            // '.' (46) after '+' (43) among non-letters
	{"1.0-1", "1.0-1+deb12u1", -1}, // revision suffixes
	{"1:9.2p1-2+deb12u3", "1:9.2p1-2+deb12u2", 1},
	{"1:9.2p1-2+deb12u10", "1:9.2p1-2+deb12u9", 1},
	{"2.36-9+deb12u3", "2.36-9+deb12u14", -1},
	{"5.6.1+really5.4.5-1", "5.6.1-1", 1},
	{"5.6.0", "5.6.0-0.1", -1},
	{"3.0.19-1~deb12u2", "3.0.19-1", -1}, // backport below the release it backports
	{"1.2.3-1ubuntu0.1", "1.2.3-1", 1},
	{"1.2.3-1ubuntu0.1", "1.2.3-1ubuntu0.10", -1},
	{"7.88.1-10+deb12u14", "7.88.1-10+deb12u5", 1},
	{"1.0-a-b", "1.0-a", 1}, // the revision is after the last '-'
	{"2:1.0", "10:0.1", -1}, //
	{"1.18.0-6+deb11u3", "1.18.0-6+deb11u3", 0},
}

func TestCompareDebian(t *testing.T) {
	for _, tc := range debianCases {
		if got := CompareDebian(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareDebian(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := CompareDebian(tc.b, tc.a); got != -tc.want {
			t.Errorf("CompareDebian(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

func TestValidateDebian(t *testing.T) {
	for _, tc := range []struct{ v, want string }{
		{"1:9.2p1-2+deb12u3", ""},
		{"1.0~rc1+dfsg-0ubuntu1", ""},
		{"2:1.0:3-1", ""}, // a colon in the upstream version is fine after an epoch
		{"", "version string is empty"},
		{"  ", "version string is empty"},
		{"1.0 beta", "version string has embedded spaces"},
		{":1.0", "epoch in version is empty"},
		{"a:1.0", "epoch in version is not number"},
		{"-1:1.0", "epoch in version is negative"},
		{"99999999999:1.0", "epoch in version is too big"},
		{"1:", "nothing after colon in version number"},
		{"1.0-", "revision number is empty"},
		{"-1", "version number is empty"},
		{"a1.0", "version number does not start with digit"},
		{"1.0_1", "invalid character in version number"},
		{"1.0-1_2", "invalid character in revision number"},
		{"1:1.0-1:2", "invalid character in revision number"},
		{"1.0-1:2", "epoch in version is not number"}, // dpkg reads up to the first colon as the epoch
	} {
		err := ValidateDebian(tc.v)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("ValidateDebian(%q) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

// TestCompareDebianAgainstDpkg compares real versions from this machine's package
// database (and apt's lists when present) with dpkg's own answer.
func TestCompareDebianAgainstDpkg(t *testing.T) {
	dpkg := testutil.Tool(t, "dpkg")
	query := testutil.Tool(t, "dpkg-query")
	out, err := exec.Command(query, "-W", "-f", "${Version}\n").Output()
	if err != nil {
		t.Fatalf("dpkg-query: %v", err)
	}
	seen := map[string]bool{}
	add := func(data []byte, prefix string) {
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, prefix) {
				continue
			}
			v := strings.TrimSpace(strings.TrimPrefix(line, prefix))
			if v != "" && ValidateDebian(v) == nil {
				seen[v] = true
			}
		}
	}
	add(out, "")
	if apt, err := exec.LookPath("apt-cache"); err == nil {
		if avail, err := exec.Command(apt, "dumpavail").Output(); err == nil {
			add(avail, "Version: ")
		}
	}
	vers := make([]string, 0, len(seen))
	for v := range seen {
		vers = append(vers, v)
	}
	sort.Strings(vers)
	if len(vers) < 50 {
		t.Fatalf("only %d distinct versions found; need a populated dpkg database", len(vers))
	}
	// Neighbours in byte order share prefixes and exercise the interesting comparisons;
	// strided pairs mix unrelated versions; a few pairs with themselves check equality.
	const want = 1200
	var pairs [][2]string
	for i := 0; len(pairs) < want && i+1 < len(vers); i++ {
		pairs = append(pairs, [2]string{vers[i], vers[i+1]})
		if len(pairs)%4 == 0 {
			pairs = append(pairs, [2]string{vers[i], vers[(i*7919+13)%len(vers)]})
		}
	}
	for k := 1; len(pairs) < want; k++ {
		for i := 0; i < len(vers) && len(pairs) < want; i += 1 + k%5 {
			pairs = append(pairs, [2]string{vers[i], vers[(i*k*31+k)%len(vers)]})
		}
	}
	pairs = append(pairs, [2]string{vers[0], vers[0]}, [2]string{vers[len(vers)/2], vers[len(vers)/2]})
	for _, tc := range debianCases {
		if ValidateDebian(tc.a) == nil && ValidateDebian(tc.b) == nil {
			pairs = append(pairs, [2]string{tc.a, tc.b})
		}
	}

	// dpkg answers one relation per process: run a few at a time.
	var (
		mu       sync.Mutex
		failures []string
		wg       sync.WaitGroup
		work     = make(chan [2]string)
	)
	for range 4 {
		wg.Go(func() {
			for p := range work {
				got := CompareDebian(p[0], p[1])
				dp := dpkgCompare(t, dpkg, p[0], p[1])
				if got != dp {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%q vs %q: got %d, dpkg says %d", p[0], p[1], got, dp))
					mu.Unlock()
				}
			}
		})
	}
	for _, p := range pairs {
		work <- p
	}
	close(work)
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	t.Logf("compared %d pairs of %d distinct real versions with dpkg", len(pairs), len(vers))
}

// dpkgCompare asks dpkg whether a < b, a = b or a > b.
func dpkgCompare(t *testing.T, dpkg, a, b string) int {
	lt := exec.Command(dpkg, "--compare-versions", a, "lt", b).Run()
	if lt == nil {
		return -1
	}
	var ee *exec.ExitError
	if !errors.As(lt, &ee) || ee.ExitCode() != 1 {
		t.Errorf("dpkg --compare-versions %q lt %q: %v", a, b, lt)
		return 99
	}
	eq := exec.Command(dpkg, "--compare-versions", a, "eq", b).Run()
	if eq == nil {
		return 0
	}
	return 1
}

// rpmvercmpCases are the cases of rpm's test suite (tests/rpmvercmp.at), including the
// tilde and caret ones and the documented oddities.
var rpmvercmpCases = []struct {
	a, b string
	want int
}{
	{"1.0", "1.0", 0},
	{"1.0", "2.0", -1},
	{"2.0", "1.0", 1},

	{"2.0.1", "2.0.1", 0},
	{"2.0", "2.0.1", -1},
	{"2.0.1", "2.0", 1},

	{"2.0.1a", "2.0.1a", 0},
	{"2.0.1a", "2.0.1", 1},
	{"2.0.1", "2.0.1a", -1},

	{"5.5p1", "5.5p1", 0},
	{"5.5p1", "5.5p2", -1},
	{"5.5p2", "5.5p1", 1},

	{"5.5p10", "5.5p10", 0},
	{"5.5p1", "5.5p10", -1},
	{"5.5p10", "5.5p1", 1},

	{"10xyz", "10.1xyz", -1},
	{"10.1xyz", "10xyz", 1},

	{"xyz10", "xyz10", 0},
	{"xyz10", "xyz10.1", -1},
	{"xyz10.1", "xyz10", 1},

	{"xyz.4", "xyz.4", 0},
	{"xyz.4", "8", -1},
	{"8", "xyz.4", 1},
	{"xyz.4", "2", -1},
	{"2", "xyz.4", 1},

	{"5.5p2", "5.6p1", -1},
	{"5.6p1", "5.5p2", 1},

	{"5.6p1", "6.5p1", -1},
	{"6.5p1", "5.6p1", 1},

	{"6.0.rc1", "6.0", 1},
	{"6.0", "6.0.rc1", -1},

	{"10b2", "10a1", 1},
	{"10a2", "10b2", -1},

	{"1.0aa", "1.0aa", 0},
	{"1.0a", "1.0aa", -1},
	{"1.0aa", "1.0a", 1},

	{"10.0001", "10.0001", 0},
	{"10.0001", "10.1", 0},
	{"10.1", "10.0001", 0},
	{"10.0001", "10.0039", -1},
	{"10.0039", "10.0001", 1},

	{"4.999.9", "5.0", -1},
	{"5.0", "4.999.9", 1},

	{"20101121", "20101121", 0},
	{"20101121", "20101122", -1},
	{"20101122", "20101121", 1},

	{"2_0", "2_0", 0},
	{"2.0", "2_0", 0},
	{"2_0", "2.0", 0},

	// RhBug:178798
	{"a", "a", 0},
	{"a+", "a+", 0},
	{"a+", "a_", 0},
	{"a_", "a+", 0},
	{"+a", "+a", 0},
	{"+a", "_a", 0},
	{"_a", "+a", 0},
	{"+_", "+_", 0},
	{"_+", "+_", 0},
	{"_+", "_", 0},
	{"+", "_", 0},
	{"_", "+", 0},

	// tilde
	{"1.0~rc1", "1.0~rc1", 0},
	{"1.0~rc1", "1.0", -1},
	{"1.0", "1.0~rc1", 1},
	{"1.0~rc1", "1.0~rc2", -1},
	{"1.0~rc2", "1.0~rc1", 1},
	{"1.0~rc1~git123", "1.0~rc1~git123", 0},
	{"1.0~rc1~git123", "1.0~rc1", -1},
	{"1.0~rc1", "1.0~rc1~git123", 1},

	// caret
	{"1.0^", "1.0^", 0},
	{"1.0^", "1.0", 1},
	{"1.0", "1.0^", -1},
	{"1.0^git1", "1.0^git1", 0},
	{"1.0^git1", "1.0", 1},
	{"1.0", "1.0^git1", -1},
	{"1.0^git1", "1.0^git2", -1},
	{"1.0^git2", "1.0^git1", 1},
	{"1.0^git1", "1.01", -1},
	{"1.01", "1.0^git1", 1},
	{"1.0^20160101", "1.0^20160101", 0},
	{"1.0^20160101", "1.0.1", -1},
	{"1.0.1", "1.0^20160101", 1},
	{"1.0^20160101^git1", "1.0^20160101^git1", 0},
	{"1.0^20160102", "1.0^20160101^git1", 1},
	{"1.0^20160101^git1", "1.0^20160102", -1},

	// tilde and caret together
	{"1.0~rc1^git1", "1.0~rc1^git1", 0},
	{"1.0~rc1^git1", "1.0~rc1", 1},
	{"1.0~rc1", "1.0~rc1^git1", -1},
	{"1.0^git1~pre", "1.0^git1~pre", 0},
	{"1.0^git1", "1.0^git1~pre", 1},
	{"1.0^git1~pre", "1.0^git1", -1},

	// Oddities the suite documents as current behaviour (RhBug:811992, non-ASCII).
	{"1b.fc17", "1b.fc17", 0},
	{"1b.fc17", "1.fc17", -1},
	{"1.fc17", "1b.fc17", 1},
	{"1g.fc17", "1g.fc17", 0},
	{"1g.fc17", "1.fc17", 1},
	{"1.fc17", "1g.fc17", -1},
	{"1.1.α", "1.1.α", 0},
	{"1.1.α", "1.1.β", 0},
	{"1.1.β", "1.1.α", 0},
	{"1.1.αα", "1.1.α", 0},
	{"1.1.α", "1.1.ββ", 0},
	{"1.1.ββ", "1.1.αα", 0},
}

func TestRPMVerCmp(t *testing.T) {
	for _, tc := range rpmvercmpCases {
		if got := rpmvercmp(tc.a, tc.b); got != tc.want {
			t.Errorf("rpmvercmp(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		// Without '-' or ':' an EVR is just a version.
		if !strings.ContainsAny(tc.a+tc.b, "-:") {
			if got := CompareRPM(tc.a, tc.b); got != tc.want {
				t.Errorf("CompareRPM(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
			}
		}
	}
}

func TestCompareRPM(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"0:1.0-1", "1.0-1", 0},          // missing epoch is 0
		{"1:1.0-1", "2.0-1", 1},          // epoch wins
		{"1.0-1", "1.0-2", -1},           // release
		{"1.0", "1.0-2", 0},              // release ignored when one side has none
		{"1.0-1.el9", "1.0-1.el9_2", -1}, //
		{"8.7p1-38.el9", "8.7p1-38.el9_4.1", -1},
		{"0:2.34-100.el9_4.2", "2.34-100.el9_4.3", -1},
		{"5.6.1-1.fc40", "5.4.6-1.fc40", 1},
		{"1.0~rc1-1", "1.0-1", -1},
		{"10:1", "9:2", 1},
	} {
		if got := CompareRPM(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareRPM(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := CompareRPM(tc.b, tc.a); got != -tc.want {
			t.Errorf("CompareRPM(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

func TestValidateRPM(t *testing.T) {
	for _, tc := range []struct{ v, want string }{
		{"0:8.7p1-38.el9_4.1", ""},
		{"1.0^git1~pre", ""},
		{"2.34", ""},
		{"", "version string is empty"},
		{":1.0", "epoch in version is empty"},
		{"x:1.0", "epoch in version is not number"},
		{"1:-1", "version number is empty"},
		{"1.0-", "release is empty"},
		{"1.0-2-3", `invalid character '-' in version`},
		{"1.0 beta", `invalid character ' ' in version`},
		{"1.0-1/2", `invalid character '/' in release`},
	} {
		err := ValidateRPM(tc.v)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("ValidateRPM(%q) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func FuzzCompareDebian(f *testing.F) {
	for _, s := range []string{"1:9.2p1-2+deb12u3", "1.0~rc1", "1.0+b1", "0", "1:", "a:b-c", "~~", "00.01"} {
		f.Add(s, "1.0")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ab, ba := CompareDebian(a, b), CompareDebian(b, a)
		if ab != -ba {
			t.Fatalf("CompareDebian(%q, %q) = %d but reversed = %d", a, b, ab, ba)
		}
		if ab < -1 || ab > 1 {
			t.Fatalf("CompareDebian(%q, %q) = %d, not in -1..1", a, b, ab)
		}
		if CompareDebian(a, a) != 0 {
			t.Fatalf("CompareDebian(%q, itself) != 0", a)
		}
		_ = ValidateDebian(a)
	})
}

func FuzzCompareRPM(f *testing.F) {
	for _, c := range rpmvercmpCases {
		f.Add(c.a, c.b)
	}
	f.Add("1:2.0-3", "0:2.0")
	f.Fuzz(func(t *testing.T, a, b string) {
		ab, ba := CompareRPM(a, b), CompareRPM(b, a)
		if ab != -ba {
			t.Fatalf("CompareRPM(%q, %q) = %d but reversed = %d", a, b, ab, ba)
		}
		if ab < -1 || ab > 1 {
			t.Fatalf("CompareRPM(%q, %q) = %d, not in -1..1", a, b, ab)
		}
		if r := rpmvercmp(a, b); r != -rpmvercmp(b, a) {
			t.Fatalf("rpmvercmp(%q, %q) not antisymmetric", a, b)
		}
		_ = ValidateRPM(a)
	})
}
