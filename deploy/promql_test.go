package deploy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// promqlWords are the words of PromQL that are not metric names: aggregations, keywords,
// and literals. Functions are recognised by the parenthesis that follows them.
var promqlWords = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true, "inf": true, "nan": true,
}

// labelLists are the keywords followed by a parenthesised list of label names.
var labelLists = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// metricNames returns the metric names a PromQL expression selects, in order of appearance:
// the identifiers outside label matchers, strings, ranges and label lists that are neither
// functions nor keywords. Grafana variables ($job, ${target}) are skipped.
func metricNames(expr string) ([]string, error) {
	var names []string
	isStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isPart := func(c byte) bool { return isStart(c) || c >= '0' && c <= '9' }
	skipSpace := func(i int) int {
		for i < len(expr) && strings.IndexByte(" \t\r\n", expr[i]) >= 0 {
			i++
		}
		return i
	}
	// skipString returns the index after the string that starts at i.
	skipString := func(i int) (int, error) {
		q := expr[i]
		for j := i + 1; j < len(expr); j++ {
			switch {
			case expr[j] == '\\' && q != '`':
				j++
			case expr[j] == q:
				return j + 1, nil
			}
		}
		return 0, fmt.Errorf("unterminated string at %d", i)
	}
	// skipTo returns the index after the closing byte, skipping strings on the way.
	skipTo := func(i int, closing byte) (int, error) {
		for i < len(expr) {
			switch c := expr[i]; {
			case c == closing:
				return i + 1, nil
			case c == '"' || c == '\'' || c == '`':
				j, err := skipString(i)
				if err != nil {
					return 0, err
				}
				i = j
			default:
				i++
			}
		}
		return 0, fmt.Errorf("no %q to close", closing)
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '{':
			j, err := skipTo(i+1, '}')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '[':
			j, err := skipTo(i+1, ']')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '"' || c == '\'' || c == '`':
			j, err := skipString(i)
			if err != nil {
				return nil, err
			}
			i = j
		case c == '$':
			i++
			if i < len(expr) && expr[i] == '{' {
				j, err := skipTo(i+1, '}')
				if err != nil {
					return nil, err
				}
				i = j
				continue
			}
			for i < len(expr) && isPart(expr[i]) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isPart(expr[i]) || expr[i] == '.') {
				i++
			}
		case isStart(c):
			j := i
			for j < len(expr) && isPart(expr[j]) {
				j++
			}
			word := expr[i:j]
			next := skipSpace(j)
			switch {
			case labelLists[word] && next < len(expr) && expr[next] == '(':
				k, err := skipTo(next+1, ')')
				if err != nil {
					return nil, err
				}
				j = k
			case promqlWords[strings.ToLower(word)]:
			case next < len(expr) && expr[next] == '(':
				// a function
			default:
				names = append(names, word)
			}
			i = j
		default:
			i++
		}
	}
	return names, nil
}

var labelValuesRE = regexp.MustCompile(`^\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$`)

// templateMetricNames reads a Grafana template query: label_values(EXPR, LABEL) or an
// expression.
func templateMetricNames(q string) ([]string, error) {
	if m := labelValuesRE.FindStringSubmatch(q); m != nil {
		q = m[1]
	}
	return metricNames(q)
}

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`hardtrail_target_up == 0`, []string{"hardtrail_target_up"}},
		{`time() - hardtrail_snapshot_timestamp_seconds{target=~"$target", job="x"} > 25 * 3600`, []string{"hardtrail_snapshot_timestamp_seconds"}},
		{`count by (severity) (hardtrail_rule_success{severity=~"a|b"} == 0)`, []string{"hardtrail_rule_success"}},
		{`label_replace(hardtrail_rule_success == 0, "rule_severity", "$1", "severity", "(.*)")`, []string{"hardtrail_rule_success"}},
		{`increase(hardtrail_collect_errors_total{job=~"$job"}[1h]) or vector(0)`, []string{"hardtrail_collect_errors_total"}},
		{`a * on (target) group_left (rule) b offset 5m unless c bool d`, []string{"a", "b", "c", "d"}},
		{`sum without (le) (rate(x_bucket[$__rate_interval]))`, []string{"x_bucket"}},
		{`{__name__="not_counted"} + ${var} + 1e3 + 0x1f + Inf`, nil},
		{`max by (incident, target) ((m{status="open"} == 1) * 0 or (m{status="x"} == 1) * 3)`, []string{"m", "m"}},
		{`node_cpu_seconds_total{mode='idle', x="a}b"}`, []string{"node_cpu_seconds_total"}},
	} {
		got, err := metricNames(tc.expr)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("metricNames(%q) = %q, %v; want %q", tc.expr, got, err, tc.want)
		}
	}
	if got, err := templateMetricNames(`label_values(hardtrail_build_info{job=~"$job"}, target)`); err != nil || !slices.Equal(got, []string{"hardtrail_build_info"}) {
		t.Errorf("label_values: %q %v", got, err)
	}
	for _, bad := range []string{`a{b="c"`, `a{b="c}`, `rate(a[5m)`} {
		if _, err := metricNames(bad); err == nil {
			t.Errorf("metricNames(%q): no error", bad)
		}
	}
}
