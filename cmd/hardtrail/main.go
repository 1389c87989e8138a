// Command hardtrail keeps the evidence trail of infrastructure hardening: snapshots, incidents,
// diffs, rules, evidence bundles and the agent that watches for regressions.
package main

import "os"

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
