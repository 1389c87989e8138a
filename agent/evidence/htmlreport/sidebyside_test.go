package htmlreport_test

import (
	"strings"
	"testing"

	"github.com/hardtrail/hardtrail/agent/evidence/htmlreport"
	"github.com/hardtrail/hardtrail/agent/evidence/view/viewtest"
)

func render(segs []htmlreport.Segment) string {
	var b strings.Builder
	for _, s := range segs {
		if s.Changed {
			b.WriteString("[" + s.Text + "]")
		} else {
			b.WriteString(s.Text)
		}
	}
	return b.String()
}

func TestWordDiff(t *testing.T) {
	for _, tc := range []struct{ old, new, wantOld, wantNew string }{
		{"permitrootlogin yes", "permitrootlogin no", "permitrootlogin [yes]", "permitrootlogin [no]"},
		{"ciphers aes128-ctr,aes256-ctr", "ciphers aes256-ctr", "ciphers [aes128-ctr,]aes256-ctr", "ciphers aes256-ctr"},
		{"same", "same", "same", "same"},
		{"", "new line", "", "[new line]"},
		{"a b c", "a x c", "a [b] c", "a [x] c"},
	} {
		o, n := htmlreport.WordDiff(tc.old, tc.new)
		if got := render(o); got != tc.wantOld {
			t.Errorf("%q→%q: old %q, want %q", tc.old, tc.new, got, tc.wantOld)
		}
		if got := render(n); got != tc.wantNew {
			t.Errorf("%q→%q: new %q, want %q", tc.old, tc.new, got, tc.wantNew)
		}
	}
}

func TestSideBySide(t *testing.T) {
	rows := htmlreport.SideBySide(viewtest.NftBefore, viewtest.NftAfter)
	var kinds []string
	for _, r := range rows {
		kinds = append(kinds, r.Kind)
	}
	want := "hunk keep keep change insert insert keep keep"
	if got := strings.Join(kinds, " "); got != want {
		t.Fatalf("rows %s, want %s", got, want)
	}
	c := rows[3]
	if c.Old.N != 3 || c.New.N != 3 || render(c.Old.Segments) != "\t\ttype filter hook input priority 0; policy [accept];" ||
		render(c.New.Segments) != "\t\ttype filter hook input priority 0; policy [drop];" {
		t.Errorf("changed row %+v", c)
	}
	if rows[4].New.N != 4 || rows[4].Old.N != 0 || rows[6].Old.N != 4 || rows[6].New.N != 6 {
		t.Errorf("line numbers: %+v %+v", rows[4], rows[6])
	}
	if rows := htmlreport.SideBySide(viewtest.Packages, viewtest.Packages); len(rows) != 0 {
		t.Errorf("equal content gave %d rows", len(rows))
	}
}
