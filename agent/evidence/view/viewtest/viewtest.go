// Package viewtest holds a fixed incident scenario for the tests of the auditor outputs.
package viewtest

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/hardtrail/hardtrail/agent/evidence/view"
	"github.com/hardtrail/hardtrail/rules"
)

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func version(phase, target, name string, content []byte, cmd ...string) *view.Version {
	v := &view.Version{Path: phase + "/" + target + "/" + name, SHA256: sum(content), Size: int64(len(content)), Content: content}
	if len(cmd) > 0 {
		exit := 0
		v.Command, v.ExitCode = cmd, &exit
	} else {
		v.File = "/" + name
	}
	return v
}

// Sshd before and after the remediation.
var (
	SshdBefore = []byte("port 22\npermitrootlogin yes\npasswordauthentication yes\nx11forwarding yes\nmaxauthtries 6\nciphers aes128-ctr,aes256-ctr\n")
	SshdAfter  = []byte("port 22\npermitrootlogin no\npasswordauthentication no\nx11forwarding no\nmaxauthtries 3\nciphers aes256-ctr\n")
	NftBefore  = []byte("table inet filter {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t}\n}\n")
	NftAfter   = []byte("table inet filter {\n\tchain input {\n\t\ttype filter hook input priority 0; policy drop;\n\t\tct state established,related accept\n\t\ttcp dport 22 accept\n\t}\n}\n")
	Packages   = []byte("openssh-server 1:9.2p1-2\nnftables 1.0.6-2\n")
)

// Sample is incident INC-2026-0042 on two targets: web1 remediated and verified, then
// regressed on fw1's firewall. Its times are fixed.
func Sample() *view.Evidence {
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	snap := func(id string, h int, host string) *view.Snapshot {
		return &view.Snapshot{ID: id, TakenAt: at(h), Hostname: host, Transport: "ssh", Address: "audit@" + host + ":22",
			HostKey: "SHA256:Qm9ndXMgaG9zdCBrZXkgZm9yIHRlc3Rz", ToolVersion: "v1.4.0"}
	}
	web := view.Target{
		Name: "web1", Status: "verified", Cause: "every linked rule passes on the newest snapshot and nothing hardened is reverted",
		Before: snap("1111111111111111111111111111111111111111111111111111111111111111", 0, "web1"),
		After:  snap("2222222222222222222222222222222222222222222222222222222222222222", 5, "web1"),
		Newest: snap("3333333333333333333333333333333333333333333333333333333333333333", 50, "web1"),
		Artifacts: []view.Artifact{
			{Name: "packages/installed", Change: "unchanged",
				Before: version("before", "web1", "packages/installed", Packages, "dpkg-query", "-W"),
				After:  version("after", "web1", "packages/installed", Packages, "dpkg-query", "-W")},
			{Name: "sshd/effective", Change: "modified", State: "holding", DiffPath: "diff/web1/sshd/effective.diff", Added: 5, Removed: 5,
				Before: version("before", "web1", "sshd/effective", SshdBefore, "sshd", "-T"),
				After:  version("after", "web1", "sshd/effective", SshdAfter, "sshd", "-T")},
			{Name: "sysctl/all", Change: "not-captured",
				Before: &view.Version{Unavailable: "permission denied"}, After: &view.Version{Unavailable: "permission denied"}},
		},
		Rules: []view.Rule{
			{ID: "ssh-no-root-login", Title: "sshd refuses root logins", Severity: "high",
				Controls: []string{"ISO27001:2022 A.8.9", "CIS 5.2.10"}, Before: rules.Fail, After: rules.Pass, Newest: rules.Pass,
				Expected: "permitrootlogin no", Actual: "permitrootlogin no"},
			{ID: "ssh-no-passwords", Title: "sshd refuses password logins", Severity: "medium",
				Controls: []string{"ISO27001:2022 A.8.5"}, Before: rules.Fail, After: rules.Pass, Newest: rules.Pass,
				Expected: "passwordauthentication no", Actual: "passwordauthentication no"},
		},
	}
	fw := view.Target{
		Name: "fw1", Status: "regressed", Cause: "rule nft-default-drop fails on the newest snapshot",
		Before: snap("4444444444444444444444444444444444444444444444444444444444444444", 1, "fw1"),
		After:  snap("5555555555555555555555555555555555555555555555555555555555555555", 6, "fw1"),
		Newest: snap("6666666666666666666666666666666666666666666666666666666666666666", 70, "fw1"),
		Artifacts: []view.Artifact{
			{Name: "firewall/nftables", Change: "modified", State: "regressed", DiffPath: "diff/fw1/firewall/nftables.diff", Added: 3, Removed: 1,
				Reverted: []string{"line 3 is back: type filter hook input priority 0; policy accept;"},
				Before:   version("before", "fw1", "firewall/nftables", NftBefore, "nft", "-s", "list", "ruleset"),
				After:    version("after", "fw1", "firewall/nftables", NftAfter, "nft", "-s", "list", "ruleset")},
		},
		Rules: []view.Rule{
			{ID: "nft-default-drop", Title: "The input chain drops by default", Severity: "critical",
				Controls: []string{"ISO27001:2022 A.8.20"}, Before: rules.Fail, After: rules.Pass, Newest: rules.Fail,
				Expected: "policy drop", Actual: "policy accept", Message: "chain input has policy accept",
				Remediation: "set the input chain's policy to drop"},
		},
	}
	ev := &view.Evidence{
		Incident: "INC-2026-0042", Title: "SSH and firewall exposed on the DMZ", Category: "exposed-service",
		Status: "regressed", AsOf: at(70), ToolVersion: "v1.4.0",
		RulesDigest:    "sha256:" + sum([]byte("rules")),
		Rules:          []string{"nft-default-drop", "ssh-no-passwords", "ssh-no-root-login"},
		SignedBy:       "SHA256:c2lnbmluZyBrZXkgZm9yIHRlc3Rz",
		ManifestSHA256: sum([]byte("manifest")),
		History: []view.StatusChange{
			{At: at(0), Target: "web1", To: "open", Cause: "a before snapshot, no after yet"},
			{At: at(1), Target: "fw1", To: "open", Cause: "a before snapshot, no after yet"},
			{At: at(5), Target: "web1", From: "open", To: "verified", Cause: "every linked rule passes"},
			{At: at(6), Target: "fw1", From: "open", To: "verified", Cause: "every linked rule passes"},
			{At: at(30), Target: "fw1", From: "verified", To: "regressed", Cause: "rule nft-default-drop fails"},
			{At: at(40), Target: "fw1", From: "regressed", To: "verified", Cause: "every linked rule passes"},
			{At: at(70), Target: "fw1", From: "verified", To: "regressed", Cause: "rule nft-default-drop fails"},
		},
		Timeline: []view.Event{
			{At: at(0), What: "snapshot captured", Target: "web1", Snapshot: web.Before.ID},
			{At: at(0).Add(time.Minute), What: "tagged before", Target: "web1", Snapshot: web.Before.ID, By: "alice", Note: "root login seen in auth.log"},
			{At: at(1), What: "tagged before", Target: "fw1", Snapshot: fw.Before.ID, By: "alice"},
			{At: at(5), What: "tagged after", Target: "web1", Snapshot: web.After.ID, By: "bob", Note: "change CHG-118"},
			{At: at(6), What: "tagged after", Target: "fw1", Snapshot: fw.After.ID, By: "bob"},
			{At: at(70), What: "newest snapshot captured", Target: "fw1", Snapshot: fw.Newest.ID},
		},
		Targets: []view.Target{fw, web},
	}
	for _, t := range ev.Targets {
		for _, a := range t.Artifacts {
			for _, v := range []*view.Version{a.Before, a.After} {
				if v != nil && v.Path != "" {
					ev.Files = append(ev.Files, view.File{Path: v.Path, SHA256: v.SHA256, Size: v.Size})
				}
			}
		}
	}
	return ev
}
