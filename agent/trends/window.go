package trends

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseWindow reads the report's span: until is a date (YYYY-MM-DD, the window ends after that
// day, UTC) or empty for now; since is a date, or a length back from until: N followed by mo
// (months), y (years), w (weeks) or d (days), such as 12mo.
func ParseWindow(since, until string, now time.Time) (Window, error) {
	w := Window{Until: now.UTC()}
	if until != "" {
		d, err := time.Parse(time.DateOnly, until)
		if err != nil {
			return w, fmt.Errorf("--until %q: want a date YYYY-MM-DD", until)
		}
		w.Until = d.AddDate(0, 0, 1)
	}
	if d, err := time.Parse(time.DateOnly, since); err == nil {
		w.Since = d
	} else {
		unit := strings.TrimLeft(since, "0123456789")
		n, err := strconv.Atoi(strings.TrimSuffix(since, unit))
		if err != nil || n <= 0 {
			return w, fmt.Errorf("--since %q: want a date YYYY-MM-DD or a length such as 12mo, 1y, 6w or 90d", since)
		}
		switch unit {
		case "mo":
			w.Since = w.Until.AddDate(0, -n, 0)
		case "y":
			w.Since = w.Until.AddDate(-n, 0, 0)
		case "w":
			w.Since = w.Until.AddDate(0, 0, -7*n)
		case "d":
			w.Since = w.Until.AddDate(0, 0, -n)
		default:
			return w, fmt.Errorf("--since %q: unknown unit %q (want mo, y, w or d)", since, unit)
		}
	}
	if !w.Since.Before(w.Until) {
		return w, fmt.Errorf("--since %s is not before --until %s", w.Since.Format(time.DateOnly), w.Until.Format(time.DateOnly))
	}
	return w, nil
}
