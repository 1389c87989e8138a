package devicesim_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"encoding/json"
	"fmt"
	"github.com/hardtrail/hardtrail/internal/testutil"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/agent/fleet"
	"github.com/hardtrail/hardtrail/agent/store"
	"github.com/hardtrail/hardtrail/collector"
	"github.com/hardtrail/hardtrail/collector/devicesim"
	"github.com/hardtrail/hardtrail/config"
	"github.com/hardtrail/hardtrail/diff"
)

const fixtures = "../../testdata/devices"

// redactionKey is fixed so that placeholders in the golden files are stable.
const redactionKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

// device is one simulated device and what its captures must show.
type device struct {
	profile string
	target  string
	sim     devicesim.Device
	extra   map[string]string // outputs beyond the captures: pager and session settings
	unix    bool              // a Unix host: files under capture-N/root
	changed []string          // artifacts the third capture changes
	host    string            // the hostname the transport learns (interactive devices: from the prompt)
	// targetExtra are lines added to the device's [[target]] table; env are variables they
	// name, whose values are secrets too (an enable secret).
	targetExtra string
	env         map[string]string
}

var iosPager = devicesim.Device{
	Shell:     true,
	Banner:    "\nAuthorised access only. Activity is logged and monitored.\n\n",
	Prompt:    "edge-rtr1#",
	PageLines: 24,
	More:      " --More-- ",
	MoreErase: "\b\b\b\b\b\b\b\b\b\b          \b\b\b\b\b\b\b\b\b\b",
	PagerOff:  []string{"terminal length 0"},
	Unknown:   "                 ^\n% Invalid input detected at '^' marker.\n\n",
}

func devices() []device {
	return []device{
		{profile: "cisco-ios", target: "edge-rtr1", host: "edge-rtr1", sim: iosPager,
			extra:   map[string]string{"terminal width 511": ""},
			changed: []string{"config/running"}},
		// The ASA login lands unprivileged: the profile enters privileged mode with the
		// target's enable secret.
		{profile: "cisco-asa", target: "asa-fw1", host: "asa-fw1", changed: []string{"config/running"},
			targetExtra: "enable_secret_env = \"HARDTRAIL_LAB_ASA_ENABLE\"\n",
			env:         map[string]string{"HARDTRAIL_LAB_ASA_ENABLE": "Asa-En4ble-Lab-91"}, sim: devicesim.Device{
				Shell:        true,
				Banner:       "Type help or '?' for a list of available commands.\n",
				UserPrompt:   "asa-fw1> ",
				Enable:       "enable",
				EnableSecret: "Asa-En4ble-Lab-91",
				WrongSecret:  "Invalid password\n",
				BadSecret:    "Access denied.\n",
				Prompt:       "asa-fw1# ",
				PageLines:    24,
				More:         "<--- More --->",
				MoreErase:    "\r              \r",
				PagerOff:     []string{"terminal pager 0"},
				Unknown:      "                  ^\nERROR: % Invalid input detected at '^' marker.\n",
			}},
		{profile: "fortigate", target: "fgt-hq", host: "FGT-HQ", changed: []string{"config/running"}, sim: devicesim.Device{
			Shell:     true,
			Prompt:    "FGT-HQ # ",
			PageLines: 22,
			More:      "--More-- ",
			MoreErase: "\r          \r",
			NoPager:   []string{"| grep ."},
			Unknown:   "Command fail. Return code -61\n",
		}},
		{profile: "junos", target: "srx-branch1", changed: []string{"config/running", "config/set"}, sim: devicesim.Device{
			Exec:        true,
			Unknown:     "error: syntax error, expecting <command>\n",
			UnknownExit: 1,
		}},
		{profile: "mikrotik", target: "mt-branch2", changed: []string{"config/running"}, sim: devicesim.Device{
			Exec:         true,
			CRLF:         true,
			NoExitStatus: true,
			Unknown:      "bad command name (line 1 column 1)\n",
		}},
		{profile: "pfsense", target: "pfsense-dmz", unix: true, changed: []string{"config/running", "firewall/pf-rules"},
			extra: map[string]string{"id -u": "0\n"}},
		{profile: "panos", target: "pa-3220-hq", host: "PA-3220-HQ", changed: []string{"config/running"}, sim: devicesim.Device{
			Shell:    true,
			Banner:   "Last login: Mon Jan 15 10:20:02 2024 from 10.10.5.30\n\nNumber of failed attempts since last successful login: 0\n\n\n",
			Prompt:   "admin@PA-3220-HQ> ",
			PagerOff: []string{"set cli pager off"},
			Unknown:  "Unknown command: bogus\nInvalid syntax.\n",
		}},
		{profile: "cisco-nxos", target: "dc1-leaf1", changed: []string{"config/running"}, sim: devicesim.Device{
			Exec:        true,
			Unknown:     "% Invalid command at '^' marker.\n",
			UnknownExit: 16,
		}},
		{profile: "arista-eos", target: "dc1-spine1", changed: []string{"config/running"}, sim: devicesim.Device{
			Exec:        true,
			Unknown:     "% Invalid input\n",
			UnknownExit: 1,
		}},
		{profile: "checkpoint-gaia", target: "gw-hq1", changed: []string{"config/running"}, sim: devicesim.Device{
			Exec:        true,
			Unknown:     "CLINFR0329  Invalid command:'bogus'.\n",
			UnknownExit: 1,
		}},
		{profile: "huawei-vrp", target: "ce6881-dc1", host: "CE6881-DC1", changed: []string{"config/running"}, sim: devicesim.Device{
			Shell:     true,
			Banner:    "\nInfo: The max number of VTY users is 21, the number of current VTY users online is 1, and total number of terminal users online is 1.\n      The current login time is 2024-01-15 10:22:33+01:00.\n      The last login time is 2024-01-12 16:41:55+01:00 from 10.10.5.30 through SSH.\n",
			Prompt:    "<CE6881-DC1>",
			PageLines: 40,
			More:      "  ---- More ----",
			MoreErase: "\r                \r",
			PagerOff:  []string{"screen-length 0 temporary"},
			Unknown:   "                ^\nError: Unrecognized command found at '^' position.\n",
		}},
	}
}

// outputs loads a capture of d: every command of its profile whose output was captured, by
// the command line the device receives.
func (d device) outputs(t *testing.T, capture int) map[string]string {
	t.Helper()
	profiles, err := collector.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	p := profiles[d.profile]
	out := map[string]string{}
	for k, v := range d.extra {
		out[k] = v
	}
	for _, s := range p.Sources {
		for i, argv := range append([][]string{s.Command}, s.Fallback...) {
			if len(argv) == 0 {
				continue
			}
			line := strings.Join(argv, " ")
			b, err := os.ReadFile(d.capturePath(capture, devicesim.FileName(line)))
			switch {
			case err == nil:
				out[line] = string(b)
			case !os.IsNotExist(err):
				t.Fatal(err)
			case i == 0 && !d.unix:
				t.Fatalf("%s: capture %d lacks the output of %q", d.profile, capture, line)
			}
		}
	}
	return out
}

func (d device) capturePath(capture int, name string) string {
	return filepath.Join(fixtures, d.profile, fmt.Sprintf("capture-%d", capture), name)
}

func (d device) golden(name string) string {
	return filepath.Join(fixtures, d.profile, "golden", strings.ReplaceAll(name, "/", "_"))
}

// lab is every device running, with a configuration and a store to capture them into.
type lab struct {
	devs    []device
	sims    []*devicesim.Server
	cfg     *config.Config
	store   *store.Store
	storeDB string
	snap    *fleet.Snapshotter
	logs    *lockedBuffer // every log line of the captures, searched for secrets too
}

// lockedBuffer collects log output from concurrent captures.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

func newLab(t *testing.T, devs []device, extraConfig string) *lab {
	t.Helper()
	dir := t.TempDir()
	key, pub := devicesim.ClientKey(t, dir, "id_ed25519")
	l := &lab{devs: devs, storeDB: filepath.Join(dir, "hardtrail.db")}
	var known []string
	var targets strings.Builder
	for _, d := range devs {
		sim := d.sim
		sim.Keys = append(sim.Keys, pub)
		sim.Outputs = d.outputs(t, 1)
		s := devicesim.Start(t, sim)
		if d.unix {
			s.SetRoot(d.capturePath(1, "root"))
		}
		l.sims = append(l.sims, s)
		known = append(known, s.KnownHostsLine())
		fmt.Fprintf(&targets, "[[target]]\nname = %q\naddress = \"hardtrail@%s\"\nprofiles = [%q]\nidentity_file = %q\nknown_hosts = \"known_hosts\"\nuse_agent = false\ncommand_timeout = \"10s\"\ntimeout = \"60s\"\n%s\n",
			d.target, s.Addr, d.profile, key, d.targetExtra)
		for k, v := range d.env {
			t.Setenv(k, v)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "known_hosts"), []byte(strings.Join(known, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf("store = %q\n\n%s%s", l.storeDB, targets.String(), extraConfig)
	cfgPath := filepath.Join(dir, "hardtrail.toml")
	if err := os.WriteFile(cfgPath, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	l.cfg = cfg
	st, err := store.Open(t.Context(), l.storeDB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l.store = st
	red, err := collector.NewRedactor([]byte(redactionKey))
	if err != nil {
		t.Fatal(err)
	}
	l.logs = &lockedBuffer{}
	l.snap = &fleet.Snapshotter{Config: cfg, Store: st, Redactor: red,
		Logger: slog.New(slog.NewTextHandler(l.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	return l
}

// capture switches every device to a capture and snapshots them all.
func (l *lab) capture(t *testing.T, n int) map[string]fleet.Result {
	t.Helper()
	for i, d := range l.devs {
		l.sims[i].SetOutputs(d.outputs(t, n))
		if d.unix {
			l.sims[i].SetRoot(d.capturePath(n, "root"))
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	rs, err := l.snap.Run(ctx, nil, fmt.Sprintf("capture %d", n), nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]fleet.Result{}
	for _, r := range rs {
		if r.Err != nil {
			t.Fatalf("capture %d of %s failed at %s: %v", n, r.Target, r.Stage, r.Err)
		}
		out[r.Target] = r
	}
	return out
}

func (l *lab) artifacts(t *testing.T, id string) (*store.Snapshot, map[string][]byte) {
	t.Helper()
	snap, err := l.store.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range snap.Manifest.Artifacts {
		b, _, err := l.store.Content(t.Context(), snap, e.Name)
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name] = b
	}
	return snap, out
}

// TestDevices captures every device profile through the real SSH transport from its simulator,
// three times: the first capture is compared with the golden artifacts; the second, taken later,
// differs from it only in volatile lines and re-encrypted secrets and must change nothing; the
// third holds one security change, which must be all the diff shows. Then the whole store is
// searched for every secret of the captures.
func TestDevices(t *testing.T) {
	devs := devices()
	l := newLab(t, devs, "")
	first := l.capture(t, 1)
	metas := map[string]map[string]map[string]string{}
	for _, d := range devs {
		t.Run(d.profile+"/golden", func(t *testing.T) {
			snap, arts := l.artifacts(t, first[d.target].Saved.ID)
			profiles, _ := collector.Builtin()
			if len(snap.Manifest.Artifacts) != len(profiles[d.profile].Sources) {
				t.Errorf("%d artifacts, want one per source (%d)", len(snap.Manifest.Artifacts), len(profiles[d.profile].Sources))
			}
			if d.host != "" && snap.Manifest.Hostname != d.host {
				t.Errorf("hostname %q, want %q from the prompt", snap.Manifest.Hostname, d.host)
			}
			metas[d.target] = map[string]map[string]string{}
			for _, e := range snap.Manifest.Artifacts {
				if e.Unavailable != "" || e.Command != nil && (e.ExitCode == nil || *e.ExitCode != 0) || e.Truncated {
					t.Errorf("%s: unavailable %q, exit %v, truncated %v, stderr %q", e.Name, e.Unavailable, e.ExitCode, e.Truncated, e.Stderr)
				}
				testutil.Golden(t, d.golden(e.Name+".txt"), arts[e.Name])
				if len(e.Meta) > 0 {
					metas[d.target][e.Name] = e.Meta
				}
			}
		})
	}

	second := l.capture(t, 2)
	for _, d := range devs {
		t.Run(d.profile+"/later", func(t *testing.T) {
			if c := second[d.target].Saved.Changed; c != 0 {
				_, a := l.artifacts(t, first[d.target].Saved.ID)
				_, b := l.artifacts(t, second[d.target].Saved.ID)
				t.Errorf("%d artifacts changed although only volatile lines did:\n%s", c, diffAll(d.target, a, b))
			}
		})
	}

	third := l.capture(t, 3)
	for _, d := range devs {
		t.Run(d.profile+"/change", func(t *testing.T) {
			snapB, before := l.artifacts(t, second[d.target].Saved.ID)
			snapA, after := l.artifacts(t, third[d.target].Saved.ID)
			var changed []string
			for name := range after {
				if !bytes.Equal(before[name], after[name]) {
					changed = append(changed, name)
				}
			}
			sort.Strings(changed)
			if !slices.Equal(changed, d.changed) {
				t.Errorf("changed artifacts %q, want %q", changed, d.changed)
			}
			if c := third[d.target].Saved.Changed; c != len(d.changed) {
				t.Errorf("store counts %d changed artifacts, want %d", c, len(d.changed))
			}
			testutil.Golden(t, d.golden("change.diff"), []byte(diffAll(d.target, before, after)))
			m := map[string]any{"capture-1": metas[d.target], "capture-2": metaOf(snapB), "capture-3": metaOf(snapA)}
			js, _ := json.MarshalIndent(m, "", "  ")
			testutil.Golden(t, d.golden("meta.json"), append(js, '\n'))
		})
	}

	t.Run("no secret in the store", func(t *testing.T) {
		noSecretInStore(t, l)
	})
	t.Run("sessions", func(t *testing.T) {
		profiles, _ := collector.Builtin()
		for i, d := range devs {
			kinds := map[string]int{}
			for _, r := range l.sims[i].Log() {
				kinds[r.Kind]++
			}
			p := profiles[d.profile]
			switch {
			case p.Interactive && (kinds["shell"] != 3 || kinds["exec"] != 0):
				t.Errorf("%s: %v, want one interactive session per capture and no exec", d.profile, kinds)
			case d.sim.UserPrompt != "" && kinds["secret"] != 3:
				t.Errorf("%s: %v, want the enable secret typed once per capture", d.profile, kinds)
			case !p.Interactive && kinds["shell"] != 0:
				t.Errorf("%s: %v, want no interactive session", d.profile, kinds)
			}
		}
	})
}

// TestExecOnlyProfile: the same commands sent as exec requests, which a CLI-only device
// refuses, fail the capture; the interactive profile is what makes the device capturable.
func TestExecOnlyProfile(t *testing.T) {
	ios := devices()[0]
	l := newLab(t, []device{ios}, `
[[profile]]
name = "ios-exec"
raw_commands = true
[[profile.source]]
name = "config/running"
command = ["show", "running-config"]
`)
	l.cfg.Targets[0].Profiles = []string{"ios-exec"}
	rs, err := l.snap.Run(t.Context(), nil, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if rs[0].Err == nil || rs[0].Stage != "command" {
		t.Fatalf("exec on a CLI-only device: stage %q, %v", rs[0].Stage, rs[0].Err)
	}
	for _, r := range l.sims[0].Log() {
		if r.Kind != "exec refused" {
			t.Errorf("device saw %+v", r)
		}
	}
	l.cfg.Targets[0].Profiles = []string{"cisco-ios"}
	if rs, _ := l.snap.Run(t.Context(), nil, "", nil); rs[0].Err != nil {
		t.Fatalf("interactive: %v", rs[0].Err)
	}
}

func metaOf(s *store.Snapshot) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, e := range s.Manifest.Artifacts {
		if len(e.Meta) > 0 {
			out[e.Name] = e.Meta
		}
	}
	return out
}

// diffAll is the unified diff of every artifact that differs, labelled a/TARGET/ARTIFACT.
func diffAll(target string, a, b map[string][]byte) string {
	var names []string
	for n := range b {
		names = append(names, n)
	}
	sort.Strings(names)
	var out strings.Builder
	for _, n := range names {
		if !bytes.Equal(a[n], b[n]) {
			out.Write(diff.Unified(a[n], b[n], "a/"+target+"/"+n, "b/"+target+"/"+n))
		}
	}
	return out.String()
}

// secrets reads a device's list of the secret values in its captures, each of which must be
// in one of the captures, so the list cannot go stale.
func secrets(t *testing.T, d device) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(fixtures, d.profile, "secrets.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var all bytes.Buffer
	filepath.WalkDir(filepath.Join(fixtures, d.profile), func(p string, e os.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() && strings.Contains(p, "capture-") {
			b, _ := os.ReadFile(p)
			all.Write(b)
		}
		return nil
	})
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		s := sc.Text()
		if s == "" || strings.HasPrefix(s, "# ") {
			continue
		}
		if !bytes.Contains(all.Bytes(), []byte(s)) {
			t.Fatalf("%s: secret %q is in no capture", d.profile, s)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no secrets listed", d.profile)
	}
	return out
}

// noSecretInStore searches the store's raw files (database and WAL) and every blob and manifest,
// decompressed, for every secret of every device's captures.
func noSecretInStore(t *testing.T, l *lab) {
	var words []string
	for _, d := range l.devs {
		words = append(words, secrets(t, d)...)
		for _, v := range d.env {
			words = append(words, v)
		}
	}
	var hay [][]byte
	for _, f := range []string{l.storeDB, l.storeDB + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		hay = append(hay, b)
	}
	rows, err := l.store.ReadDB().QueryContext(t.Context(), `SELECT data FROM blobs UNION ALL SELECT manifest FROM snapshots`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var z []byte
		if err := rows.Scan(&z); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(flate.NewReader(bytes.NewReader(z)))
		if err != nil {
			t.Fatal(err)
		}
		hay = append(hay, b)
		n++
	}
	if n < 2*len(l.devs) {
		t.Fatalf("only %d blobs and manifests", n)
	}
	logs := l.logs.Bytes()
	hay = append(hay, logs)
	for _, w := range words {
		for _, h := range hay {
			if bytes.Contains(h, []byte(w)) {
				t.Errorf("secret %q found in the store", w)
				break
			}
		}
	}
	t.Logf("%d secrets searched for in %d stored items, the raw database and %d bytes of log", len(words), n, len(logs))
}
