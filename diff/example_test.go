package diff_test

import (
	"fmt"

	"github.com/hardtrail/hardtrail/diff"
)

func ExampleUnified() {
	before := []byte("Port 22\nPermitRootLogin yes\nUsePAM yes\n")
	after := []byte("Port 22\nPermitRootLogin no\nUsePAM yes\n")
	fmt.Print(string(diff.Unified(before, after, "a/web1/sshd/effective", "b/web1/sshd/effective")))
	// Output:
	// --- a/web1/sshd/effective
	// +++ b/web1/sshd/effective
	// @@ -1,3 +1,3 @@
	//  Port 22
	// -PermitRootLogin yes
	// +PermitRootLogin no
	//  UsePAM yes
}

func ExampleUnified_added() {
	fmt.Print(string(diff.Unified(nil, []byte("net.ipv4.tcp_syncookies = 1"), diff.DevNull, "b/web1/sysctl/all")))
	// Output:
	// --- /dev/null
	// +++ b/web1/sysctl/all
	// @@ -0,0 +1 @@
	// +net.ipv4.tcp_syncookies = 1
	// \ No newline at end of file
}

func ExampleParse() {
	patch := diff.Unified([]byte("a\nb\n"), []byte("a\nc\n"), "a/x", "b/x")
	fps, err := diff.Parse(patch)
	if err != nil {
		panic(err)
	}
	name, _ := diff.Strip(fps[0].Name(), 1)
	out, err := fps[0].Apply([]byte("a\nb\n"))
	fmt.Printf("%s: %q %v\n", name, out, err)
	_, err = fps[0].Apply([]byte("a\nB\n"))
	fmt.Println(err)
	// Output:
	// x: "a\nc\n" <nil>
	// b/x: hunk 1 (@@ -1,2 +1,2 @@): line 2: have "B", want "b"
}

func ExampleRegression() {
	before := []byte("Port 22\nPermitRootLogin yes\nX11Forwarding yes\n")
	after := []byte("Port 22\nPermitRootLogin no\nX11Forwarding no\n")
	current := []byte("Port 2222\nPermitRootLogin no\nX11Forwarding yes\n")
	r := diff.Regression(before, after, current)
	fmt.Println(r.Status)
	for _, h := range r.Hardened {
		for _, l := range h.Back {
			fmt.Printf("back at line %d: %s\n", l.Line, l.Text)
		}
		for _, l := range h.Gone {
			fmt.Printf("gone from line %d: %s\n", l.Line, l.Text)
		}
	}
	for _, d := range r.Drift {
		fmt.Printf("drift: %v -> %v\n", d.Removed, d.Added)
	}
	// Output:
	// regressed
	// back at line 3: X11Forwarding yes
	// gone from line 3: X11Forwarding no
	// drift: [{1 Port 22}] -> [{1 Port 2222}]
}
