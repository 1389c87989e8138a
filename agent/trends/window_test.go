package trends_test

import (
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/agent/trends"
)

func TestParseWindow(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)
	d := func(y, m, day int) time.Time { return time.Date(y, time.Month(m), day, 0, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		since, until string
		want         trends.Window
		bad          bool
	}{
		{"12mo", "2026-11-30", trends.Window{Since: d(2025, 12, 1), Until: d(2026, 12, 1)}, false},
		{"1y", "2026-11-30", trends.Window{Since: d(2025, 12, 1), Until: d(2026, 12, 1)}, false},
		{"90d", "2026-11-30", trends.Window{Since: d(2026, 9, 2), Until: d(2026, 12, 1)}, false},
		{"2026-01-01", "", trends.Window{Since: d(2026, 1, 1), Until: now}, false},
		{"3mo", "", trends.Window{Since: now.AddDate(0, -3, 0), Until: now}, false},
		{"12", "", trends.Window{}, true},
		{"12m", "", trends.Window{}, true},
		{"-3d", "", trends.Window{}, true},
		{"12mo", "30.11.2026", trends.Window{}, true},
		{"2027-01-01", "2026-11-30", trends.Window{}, true},
	} {
		w, err := trends.ParseWindow(tc.since, tc.until, now)
		if tc.bad {
			if err == nil {
				t.Errorf("%q %q: accepted as %+v", tc.since, tc.until, w)
			}
			continue
		}
		if err != nil || !w.Since.Equal(tc.want.Since) || !w.Until.Equal(tc.want.Until) {
			t.Errorf("%q %q: %+v %v, want %+v", tc.since, tc.until, w, err, tc.want)
		}
	}
}

func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{"12mo", "1y", "90d", "6w", "2026-01-01", "", "0d", "99999999999y"} {
		f.Add(s, "2026-11-30")
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, since, until string) {
		w, err := trends.ParseWindow(since, until, now)
		if err == nil && !w.Since.Before(w.Until) {
			t.Fatalf("%q %q: empty window %+v accepted", since, until, w)
		}
	})
}
