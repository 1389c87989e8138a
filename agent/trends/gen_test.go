package trends_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/rules"
)

// The generated store: twelve months of incidents on a small fleet, made the way the agent and
// the CLI make them (snapshots, links, status events, stored rule results), from a fixed seed.
var (
	genStart = time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC)
	genUntil = genStart.AddDate(1, 0, 0)
)

type genRule struct {
	id       string
	controls []string
	artifact string
	weak     string // the artifact's weak line
	hard     string // its hardened line
}

var genRules = []genRule{
	{"ssh-no-root-login", []string{"ISO27001:2022 A.8.9", "CIS 5.2.10"}, "sshd/effective", "permitrootlogin yes", "permitrootlogin no"},
	{"ssh-no-passwords", []string{"ISO27001:2022 A.8.5"}, "sshd/effective", "passwordauthentication yes", "passwordauthentication no"},
	{"nft-default-drop", []string{"ISO27001:2022 A.8.20"}, "firewall/nftables", "policy accept;", "policy drop;"},
	{"no-telnet", []string{"ISO27001:2022 A.8.20", "CIS 2.2.18"}, "services/units", "telnet.socket enabled", "telnet.socket masked"},
	{"openssl-patched", []string{"ISO27001:2022 A.8.8"}, "packages/installed", "openssl 3.0.11-1", "openssl 3.0.15-1"},
	{"sysctl-no-redirects", []string{"ISO27001:2022 A.8.22"}, "sysctl/all", "net.ipv4.conf.all.accept_redirects = 1", "net.ipv4.conf.all.accept_redirects = 0"},
	{"ssh-max-auth", []string{"ISO27001:2022 A.8.5", "CIS 5.2.7"}, "sshd/effective", "maxauthtries 6", "maxauthtries 3"},
}

var genCategories = map[string][]int{ // category: the rules its incidents are about
	"exposed-service":    {2, 3},
	"weak-credentials":   {1, 6},
	"privileged-access":  {0},
	"unpatched-software": {4},
	"network-misrouting": {5, 2},
	"phishing-foothold":  {1, 0},
}

var genTargets = []string{"web1", "web2", "web3", "db1", "fw1", "vpn1"}

// generated is the store, built once for the package's tests and benchmarks.
type generated struct {
	path       string
	categories map[string]string
	incidents  int
	snapshots  int
}

var (
	genOnce sync.Once
	gen     *generated
	genErr  error
	genDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if genDir != "" {
		os.RemoveAll(genDir)
	}
	os.Exit(code)
}

// content renders a target's artifacts with the rules in hard hardened and the others weak.
func content(hard map[int]bool, target string) map[string][]byte {
	out := map[string][]byte{}
	for i, r := range genRules {
		line := r.weak
		if hard[i] {
			line = r.hard
		}
		out[r.artifact] = append(out[r.artifact], []byte(line+"\n")...)
	}
	out["net/listening"] = []byte(fmt.Sprintf("tcp 0.0.0.0:22 sshd\ntcp 127.0.0.1:%d app-%s\n", 8000+len(target), target))
	return out
}

func generate(tb testing.TB) *generated {
	tb.Helper()
	genOnce.Do(func() { gen, genErr = build() })
	if genErr != nil {
		tb.Fatal(genErr)
	}
	return gen
}

func build() (*generated, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "hardtrail-trends-*")
	if err != nil {
		return nil, err
	}
	genDir = dir
	g := &generated{path: filepath.Join(dir, "store.db"), categories: map[string]string{}}
	st, err := store.Open(ctx, g.path)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	rnd := rand.New(rand.NewPCG(15, 27))
	hard := map[string]map[int]bool{} // what each target has hardened now
	for _, t := range genTargets {
		hard[t] = map[int]bool{}
	}
	save := func(target string, at time.Time) (string, error) {
		c := content(hard[target], target)
		m := &store.Manifest{Target: target, Started: at.Add(-2 * time.Second), TakenAt: at, Transport: "ssh",
			Address: "audit@" + target + ":22", Profiles: []string{"linux"}, ToolVersion: "v1.4.0"}
		var contents [][]byte
		for _, name := range []string{"firewall/nftables", "net/listening", "packages/installed", "services/units", "sshd/effective", "sysctl/all"} {
			m.Artifacts = append(m.Artifacts, store.ArtifactEntry{Name: name, Source: name, Command: []string{"capture", name}})
			contents = append(contents, c[name])
		}
		s, err := st.Save(ctx, m, contents)
		if err != nil {
			return "", err
		}
		g.snapshots++
		return s.ID, nil
	}
	results := func(snap, target, inc string, failing []int, at time.Time) error {
		var rs []rules.Result
		for _, i := range failing {
			r := genRules[i]
			rs = append(rs, rules.Result{Rule: r.id, Title: r.id, Severity: rules.High, Kind: "file", Controls: r.controls,
				Incidents: []string{inc}, Outcome: rules.Fail, Expected: r.hard, Actual: r.weak})
		}
		raw, err := json.Marshal(rules.NewReport(rs, target, snap, "sha256:generated", at))
		if err != nil {
			return err
		}
		return st.SaveResults(ctx, snap, "sha256:generated", at, raw)
	}
	event := func(inc, target, status, snap string, at time.Time) error {
		_, err := st.RecordStatus(ctx, store.StatusEvent{Incident: inc, Target: target, Status: status, Cause: "generated", Snapshot: snap, At: at})
		return err
	}
	type pending struct {
		at   time.Time
		what func() error
	}
	cats := []string{"exposed-service", "network-misrouting", "phishing-foothold", "privileged-access", "unpatched-software", "weak-credentials"}
	var steps []pending
	n := 0
	for month := 0; month < 12; month++ {
		perMonth := 3 + rnd.IntN(3)
		for k := 0; k < perMonth; k++ {
			n++
			id := fmt.Sprintf("INC-%s-%03d", genStart.AddDate(0, month, 0).Format("2006"), n)
			cat := cats[rnd.IntN(len(cats))]
			if n%9 == 0 {
				cat = "" // an incident whose record names no category
			}
			g.categories[id] = cat
			pool := genCategories[cat]
			if cat == "" {
				pool = []int{rnd.IntN(len(genRules))}
			}
			weak := []int{pool[rnd.IntN(len(pool))]}
			opened := genStart.AddDate(0, month, 0).Add(time.Duration(rnd.IntN(27*24)) * time.Hour).Add(time.Duration(rnd.IntN(60)) * time.Minute)
			targets := []string{genTargets[rnd.IntN(len(genTargets))]}
			if rnd.IntN(3) == 0 {
				if o := genTargets[rnd.IntN(len(genTargets))]; o != targets[0] {
					targets = append(targets, o)
				}
			}
			fixAfter := time.Duration(2+rnd.IntN(20*24)) * time.Hour
			verifyAfter := time.Duration(1+rnd.IntN(72)) * time.Hour
			regress := rnd.IntN(10) < 3
			regressAfter := time.Duration(5+rnd.IntN(40)) * 24 * time.Hour
			reverify := rnd.IntN(2) == 0
			neverVerified := rnd.IntN(12) == 0
			for ti, t := range targets {
				t, id, at := t, id, opened.Add(time.Duration(ti)*time.Minute)
				steps = append(steps, pending{at, func() error {
					for _, w := range weak {
						hard[t][w] = false
					}
					snap, err := save(t, at)
					if err != nil {
						return err
					}
					if err := results(snap, t, id, weak, at); err != nil {
						return err
					}
					if _, err := st.Tag(ctx, store.Link{Incident: id, Phase: store.Before, Snapshot: snap, By: "alice", At: at}); err != nil {
						return err
					}
					return event(id, t, "open", snap, at)
				}})
				fixed := at.Add(fixAfter)
				steps = append(steps, pending{fixed, func() error {
					for _, w := range weak {
						hard[t][w] = true
					}
					snap, err := save(t, fixed)
					if err != nil {
						return err
					}
					if err := results(snap, t, id, nil, fixed); err != nil {
						return err
					}
					if _, err := st.Tag(ctx, store.Link{Incident: id, Phase: store.After, Snapshot: snap, By: "bob", At: fixed}); err != nil {
						return err
					}
					return event(id, t, "remediated", snap, fixed)
				}})
				if neverVerified {
					continue
				}
				steps = append(steps, pending{fixed.Add(verifyAfter), func() error {
					return event(id, t, "verified", "", fixed.Add(verifyAfter))
				}})
				if regress && ti == 0 {
					back := fixed.Add(verifyAfter + regressAfter)
					steps = append(steps, pending{back, func() error {
						for _, w := range weak {
							hard[t][w] = false
						}
						snap, err := save(t, back)
						if err != nil {
							return err
						}
						if err := results(snap, t, id, weak, back); err != nil {
							return err
						}
						return event(id, t, "regressed", snap, back)
					}})
					if reverify {
						again := back.Add(time.Duration(6+rnd.IntN(48)) * time.Hour)
						steps = append(steps, pending{again, func() error {
							for _, w := range weak {
								hard[t][w] = true
							}
							snap, err := save(t, again)
							if err != nil {
								return err
							}
							return event(id, t, "verified", snap, again)
						}})
					}
				}
			}
		}
	}
	g.incidents = n
	// The agent's daily captures fill the rest: over 500 snapshots in the year.
	for d := 0; d < 365; d++ {
		at := genStart.Add(time.Duration(d)*23*time.Hour + 7*time.Hour)
		t := genTargets[d%len(genTargets)]
		steps = append(steps, pending{at, func() error { _, err := save(t, at); return err }})
	}
	sortSteps := func() {
		for i := 1; i < len(steps); i++ {
			for j := i; j > 0 && steps[j].at.Before(steps[j-1].at); j-- {
				steps[j], steps[j-1] = steps[j-1], steps[j]
			}
		}
	}
	sortSteps()
	for _, s := range steps {
		if !s.at.Before(genUntil.AddDate(0, 3, 0)) {
			continue
		}
		if err := s.what(); err != nil {
			return nil, err
		}
	}
	return g, nil
}
