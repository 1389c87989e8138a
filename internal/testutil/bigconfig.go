package testutil

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// BigConfig returns a deterministic config-like artifact of n lines (a web server config of
// many similar blocks: braces, blank lines and comments repeat, names and addresses do not), and
// a copy with 1% of its lines changed, deleted or added. Benchmarks of the diff use it.
func BigConfig(n int) (before, after []byte) {
	r := rand.New(rand.NewPCG(uint64(n), 42))
	block := func(i int) []string {
		return []string{
			fmt.Sprintf("# site %d", i),
			"server {",
			"    listen 443 ssl;",
			fmt.Sprintf("    server_name site%d.example.com;", i),
			"    ssl_protocols TLSv1.2 TLSv1.3;",
			"    location / {",
			fmt.Sprintf("        proxy_pass http://10.%d.%d.%d:8080;", i>>16&255, i>>8&255, i&255),
			"        proxy_set_header Host $host;",
			"    }",
			"}",
			"",
		}
	}
	var a []string
	for i := 0; len(a) < n; i++ {
		a = append(a, block(i)...)
	}
	a = a[:n]
	var b []string
	for i, l := range a {
		switch p := r.IntN(300); {
		case p == 0: // changed
			b = append(b, l+" # changed")
		case p == 1: // deleted
		case p == 2: // added
			b = append(b, l, fmt.Sprintf("    add_header X-Line %d;", i))
		default:
			b = append(b, l)
		}
	}
	return []byte(strings.Join(a, "\n") + "\n"), []byte(strings.Join(b, "\n") + "\n")
}
