package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/agent/fleet"
	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/internal/pgtest"
	"github.com/hardtrail/hardtrail/rules"
)

// Fleet store sizes: the figure's 1,000 targets of 100 snapshots each, and the incidents in it.
const (
	fleetTargets   = 1000
	fleetSnapshots = 100
	fleetIncidents = 20
	fleetInterval  = 5 * time.Minute
)

// fleetStoreRules links one rule to every incident of the fleet store: root may not log in over SSH.
var fleetStoreRules = func() string {
	var ids []string
	for j := range fleetIncidents {
		ids = append(ids, fmt.Sprintf("%q", fleetIncident(j)))
	}
	return `[[rule]]
id = "ssh-no-root-login"
title = "root cannot log in over SSH"
severity = "high"
controls = ["ISO27001:2022 A.8.5"]
incidents = [` + strings.Join(ids, ", ") + `]
[rule.file]
path = "sshd/config"
absent = "^PermitRootLogin yes"

[[rule]]
id = "no-forwarding"
title = "IP forwarding is off"
severity = "medium"
controls = ["ISO27001:2022 A.8.20"]
[rule.file]
path = "sysctl"
absent = "^net.ipv4.ip_forward = 1"
`
}()

func fleetIncident(j int) string { return fmt.Sprintf("INC-2026-%04d", j+1) }

// fleetIncidentTargets are the two targets of incident j.
func fleetIncidentTargets(j int) []int {
	return []int{j*fleetTargets/fleetIncidents + 3, j*fleetTargets/fleetIncidents + 4}
}

// Seqs at which the incident targets' SSH configuration is weak: before the fix (the before
// link is at weakUntil, the after link at fixedAt), and during one regression on the first
// target of every odd incident.
const (
	weakUntil      = 40
	fixedAt        = 42
	regressedFrom  = 70
	regressedUntil = 72
)

// fleetContents are the six artifacts of snapshot seq of target i. Most change rarely, so that
// blobs are shared along a chain as they are in a real fleet.
func fleetContents(i, seq int, incidentTarget, regresses bool) (names []string, contents [][]byte) {
	weak := incidentTarget && (seq <= weakUntil || (regresses && seq >= regressedFrom && seq <= regressedUntil))
	root := "prohibit-password"
	if weak {
		root = "yes"
	} else if incidentTarget {
		root = "no"
	}
	var sshd strings.Builder
	fmt.Fprintf(&sshd, "# host%04d, revision %d\nPort 22\nPermitRootLogin %s\nPasswordAuthentication no\n", i, seq/30, root)
	for k := range 30 {
		fmt.Fprintf(&sshd, "Match User svc%02d\n\tAllowTcpForwarding no\n", k)
	}
	var sysctl, ports, pkgs, fw strings.Builder
	for k := range 120 {
		fmt.Fprintf(&sysctl, "net.ipv4.conf.eth%d.rp_filter = %d\n", k, (k+i)%2)
	}
	fmt.Fprintf(&sysctl, "vm.swappiness = %d\n", 10+seq/25)
	for k := range 12 {
		fmt.Fprintf(&ports, "tcp LISTEN 0 128 0.0.0.0:%d 0.0.0.0:* users:((\"svc\",pid=%d))\n", 8000+k, 100+k+i+seq/50)
	}
	for k := range 200 {
		// Every 10 captures one package was upgraded.
		fmt.Fprintf(&pkgs, "pkg%03d\t1.%d.%d\tamd64\tii\n", k, k%7, (seq/10+k)/200)
	}
	for k := range 40 {
		fmt.Fprintf(&fw, "-A INPUT -s 10.%d.%d.0/24 -p tcp --dport %d -j ACCEPT\n", i%250, k, 22+k)
	}
	names = []string{"os-release", "sshd/config", "sysctl", "ports", "packages", "firewall"}
	contents = [][]byte{[]byte("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n"), []byte(sshd.String()),
		[]byte(sysctl.String()), []byte(ports.String()), []byte(pkgs.String()), []byte(fw.String())}
	return names, contents
}

// buildFleetStore fills a SQLite store at path with the fleet: every target's snapshots, and for
// each incident its record (opened, a note), the before and after links of its two targets,
// the rules' results on every snapshot of those, the status changes the agent would record
// and held spans on their newest snapshots.
func buildFleetStore(b *testing.B, path, rulesDir string) {
	ctx := context.Background()
	st, err := store.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	st.CacheBlobs(64 << 20) // the rules read what was just saved
	set, err := rules.LoadSources(rules.Source{Path: rulesDir})
	if err != nil {
		b.Fatal(err)
	}
	incidentOf := map[int]int{} // target -> incident
	for j := range fleetIncidents {
		for _, i := range fleetIncidentTargets(j) {
			incidentOf[i] = j
		}
	}
	t0 := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	ids := map[[2]int]string{} // incident targets' snapshots by target and seq
	for seq := 1; seq <= fleetSnapshots; seq++ {
		for i := range fleetTargets {
			j, inc := incidentOf[i]
			names, contents := fleetContents(i, seq, inc, inc && j%2 == 1 && i == fleetIncidentTargets(j)[0])
			at := t0.Add(time.Duration(seq)*fleetInterval + time.Duration(i)*100*time.Millisecond)
			m := &store.Manifest{Target: fmt.Sprintf("host%04d", i), Transport: "ssh", Address: fmt.Sprintf("10.0.%d.%d:22", i/250, i%250),
				Started: at.Add(-2 * time.Second), TakenAt: at, Profiles: []string{"linux"}, ToolVersion: "bench"}
			for _, n := range names {
				m.Artifacts = append(m.Artifacts, store.ArtifactEntry{Name: n, Source: "files", Path: "/" + n, Mode: "0644", Owner: "root", Group: "root"})
			}
			sv, err := st.Save(ctx, m, contents)
			if err != nil {
				b.Fatal(err)
			}
			if !inc {
				continue
			}
			ids[[2]int{i, seq}] = sv.ID
			snap, err := st.Get(ctx, sv.ID)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := fleet.Check(ctx, st, snap, set, at); err != nil {
				b.Fatal(err)
			}
		}
	}
	for j := range fleetIncidents {
		id := fleetIncident(j)
		at := t0.Add(weakUntil * fleetInterval)
		if _, err := st.AddRecord(ctx, store.Record{Incident: id, Kind: store.KindOpen, Title: "root could log in over SSH", Severity: "high", By: "alice", At: at}); err != nil {
			b.Fatal(err)
		}
		for _, i := range fleetIncidentTargets(j) {
			target := fmt.Sprintf("host%04d", i)
			for _, l := range []struct {
				phase string
				seq   int
			}{{store.Before, weakUntil}, {store.After, fixedAt}} {
				if _, err := st.Tag(ctx, store.Link{Incident: id, Phase: l.phase, Snapshot: ids[[2]int{i, l.seq}], By: "alice", At: t0.Add(time.Duration(l.seq) * fleetInterval)}); err != nil {
					b.Fatal(err)
				}
			}
			events := []struct {
				status string
				seq    int
			}{{"open", weakUntil}, {"verified", fixedAt}}
			if j%2 == 1 && i == fleetIncidentTargets(j)[0] {
				events = append(events, struct {
					status string
					seq    int
				}{"regressed", regressedFrom}, struct {
					status string
					seq    int
				}{"verified", regressedUntil + 1})
			}
			for _, e := range events {
				if _, err := st.RecordStatus(ctx, store.StatusEvent{Incident: id, Target: target, Status: e.status, Cause: "bench",
					Snapshot: ids[[2]int{i, e.seq}], At: t0.Add(time.Duration(e.seq) * fleetInterval)}); err != nil {
					b.Fatal(err)
				}
			}
			// Captures after the newest snapshot find it unchanged.
			names, contents := fleetContents(i, fleetSnapshots, true, false)
			for k := 1; k <= 5; k++ {
				at := t0.Add(time.Duration(fleetSnapshots)*fleetInterval + time.Duration(i)*100*time.Millisecond + time.Duration(k)*fleetInterval)
				m := &store.Manifest{Target: target, Transport: "ssh", Address: fmt.Sprintf("10.0.%d.%d:22", i/250, i%250),
					Started: at.Add(-2 * time.Second), TakenAt: at, Profiles: []string{"linux"}, ToolVersion: "bench"}
				for _, n := range names {
					m.Artifacts = append(m.Artifacts, store.ArtifactEntry{Name: n, Source: "files", Path: "/" + n, Mode: "0644", Owner: "root", Group: "root"})
				}
				sv, err := st.SaveOrHold(ctx, m, contents, store.HoldPolicy{MaxAge: 24 * time.Hour, MaxGap: time.Hour})
				if err != nil || !sv.Held {
					b.Fatalf("hold %s: %+v %v", target, sv, err)
				}
			}
		}
		if _, err := st.AddRecord(ctx, store.Record{Incident: id, Kind: store.KindNote, Text: "sshd_config fixed by the config management", By: "bob", At: t0.Add(fixedAt * fleetInterval)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStoreQueries times `hardtrail log`, `incident list` and `incident show`, each as
// a whole process, over one store of 1,000 targets x 100 snapshots with 20 incidents, on SQLite
// and on PostgreSQL (the same store, copied, then analysed as autovacuum would), side by side
// in every iteration; each command must print the same on both. The goal is under 200 ms for
// each command on PostgreSQL. The store is built once, untimed.
func BenchmarkStoreQueries(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	if err := os.MkdirAll(rulesDir, 0o700); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rulesDir, "fleet.toml"), []byte(fleetStoreRules), 0o600); err != nil {
		b.Fatal(err)
	}
	// Built on tmpfs when there is one (a SQLite commit syncs), then copied beside the config.
	buildDir := dir
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if buildDir, err = os.MkdirTemp("/dev/shm", "hardtrail-bench-"); err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(buildDir)
	}
	start := time.Now()
	built := filepath.Join(buildDir, "fleet.db")
	sqlitePath := filepath.Join(dir, "fleet.db")
	buildFleetStore(b, built, rulesDir)
	if buildDir != dir {
		copyFile(b, built, sqlitePath)
	}
	b.Logf("built the SQLite store in %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	c := pgtest.Shared(b)
	db := c.NewDB(b, "")
	dsn := c.DSN(db, c.User)
	src, err := store.Open(ctx, sqlitePath)
	if err != nil {
		b.Fatal(err)
	}
	dst, err := store.Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := store.Copy(ctx, src, dst); err != nil {
		b.Fatal(err)
	}
	src.Close()
	dst.Close()
	c.Exec(b, db, `VACUUM ANALYZE`)
	b.Logf("copied it to PostgreSQL in %v", time.Since(start).Round(time.Millisecond))

	engines := []struct{ name, cfg string }{{"sqlite", sqlitePath}, {"pg", dsn}}
	for i, e := range engines {
		cfg := filepath.Join(dir, e.name+".toml")
		if err := os.WriteFile(cfg, fmt.Appendf(nil, "store = %q\nrules = [%q]\n[[target]]\nname = \"host0000\"\nprofiles = [\"linux\"]\n", e.cfg, rulesDir), 0o600); err != nil {
			b.Fatal(err)
		}
		engines[i].cfg = cfg
	}
	commands := []struct {
		name string
		args []string
		// check is what the output must show, so that a fast but wrong answer fails.
		check func(out string) error
	}{
		{"log", []string{"log"}, func(out string) error {
			if n := strings.Count(out, "\n"); n != logDefault {
				return fmt.Errorf("%d snapshots listed, want the newest %d", n, logDefault)
			}
			return nil
		}},
		{"incident-list", []string{"incident", "list"}, func(out string) error {
			if n := strings.Count(out, "INC-2026-"); n != fleetIncidents {
				return fmt.Errorf("%d incidents listed, want %d", n, fleetIncidents)
			}
			return nil
		}},
		{"incident-show", []string{"incident", "show", fleetIncident(1)}, func(out string) error {
			for _, want := range []string{"regression 1: first seen", "held unchanged", "status history", "-> regressed", "ssh-no-root-login"} {
				if !strings.Contains(out, want) {
					return fmt.Errorf("no %q in:\n%s", want, out)
				}
			}
			return nil
		}},
	}
	run := func(cfg string, args []string) (string, time.Duration, time.Duration) {
		cmd := exec.Command(binary, append([]string{"--config", cfg}, args...)...)
		var out, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatalf("%v: %v\n%s%s", args, err, out.String(), stderr.String())
		}
		wall := time.Since(start)
		return out.String(), wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	// The commands print the same on both engines.
	for _, cm := range commands {
		a, _, _ := run(engines[0].cfg, cm.args)
		p, _, _ := run(engines[1].cfg, cm.args)
		if err := cm.check(p); err != nil {
			b.Fatalf("%s: %v", cm.name, err)
		}
		if a != p {
			b.Fatalf("%s prints differently on SQLite and PostgreSQL:\n%s\n---\n%s", cm.name, a, p)
		}
	}
	// Wall time is the figure; the CPU time the process used beside it shows how much of that
	// was waiting (for the database, or for a busy machine).
	wall, cpu := map[string]time.Duration{}, map[string]time.Duration{}
	for b.Loop() {
		for _, cm := range commands {
			for _, e := range engines {
				_, w, c := run(e.cfg, cm.args)
				wall[e.name+"/"+cm.name] += w
				cpu[e.name+"/"+cm.name] += c
			}
		}
	}
	perRun := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	for _, cm := range commands {
		for _, e := range engines {
			k := e.name + "/" + cm.name
			ms, cms := perRun(wall[k]), perRun(cpu[k])
			b.ReportMetric(ms, e.name+"-"+cm.name+"-ms")
			b.ReportMetric(cms, e.name+"-"+cm.name+"-cpu-ms")
			switch {
			case e.name == "pg" && ms >= 200:
				b.Errorf("%s on PostgreSQL: %.1f ms (CPU %.1f ms), above the goal of 200 ms", cm.name, ms, cms)
			case e.name == "pg":
				b.Logf("%s on PostgreSQL: %.1f ms (CPU %.1f ms; goal: under 200 ms)", cm.name, ms, cms)
			default:
				b.Logf("%s on SQLite: %.1f ms (CPU %.1f ms; no goal)", cm.name, ms, cms)
			}
		}
	}
}

func copyFile(b *testing.B, from, to string) {
	in, err := os.Open(from)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		b.Fatal(err)
	}
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
}
