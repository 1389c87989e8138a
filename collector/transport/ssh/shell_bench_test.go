package ssh_test

import (
	"testing"
	"time"

	"github.com/hardtrail/hardtrail/collector/devicesim"
	"github.com/hardtrail/hardtrail/collector/transport"
	"github.com/hardtrail/hardtrail/collector/transport/ssh"
	"github.com/hardtrail/hardtrail/collector/transport/ssh/sshtest"
)

// BenchmarkDeviceCommands runs the same three commands on one simulated device that answers
// both ways: in one interactive session (prompt detection, pager off first) and as exec
// requests, one session each. Compare the two in one run.
func BenchmarkDeviceCommands(b *testing.B) {
	outputs := map[string]string{
		"show running-config": longConfig(230),
		"show version":        "Cisco IOS Software, Version 15.7(3)M8\nedge-rtr1 uptime is 12 weeks\n",
		"show ip ssh":         "SSH Enabled - version 2.0\nAuthentication timeout: 60 secs; Authentication retries: 3\n",
	}
	d := devicesim.Device{Exec: true, Shell: true, Prompt: "edge-rtr1#", PagerOff: []string{"terminal length 0"}, Outputs: outputs}
	srv := devicesim.Start(b, d)
	dir := b.TempDir()
	key, _ := devicesim.ClientKey(b, dir, "id")
	cfgKnown := sshtest.WriteKnownHosts(b, dir, srv.KnownHostsLine())
	cmds := []transport.Command{
		{Argv: []string{"show", "running-config"}}, {Argv: []string{"show", "version"}}, {Argv: []string{"show", "ip", "ssh"}},
	}
	tr := dial(b, sshConfig(srv.Addr, key, cfgKnown))
	b.Run("interactive", func(b *testing.B) {
		for b.Loop() {
			rs, err := tr.RunShell(b.Context(), transport.Shell{Prompt: iosPrompt, Setup: []string{"terminal length 0"}}, cmds)
			if err != nil || rs[0].Err != nil || len(rs[0].Result.Stdout) < 1000 {
				b.Fatalf("%v %v", err, rs[0].Err)
			}
		}
	})
	b.Run("exec", func(b *testing.B) {
		for b.Loop() {
			rs, err := tr.RunBatch(b.Context(), cmds)
			if err != nil || rs[0].Err != nil || len(rs[0].Result.Stdout) < 1000 {
				b.Fatalf("%v %v", err, rs[0].Err)
			}
		}
	})
}

func sshConfig(addr, key, known string) ssh.Config {
	return ssh.Config{Address: "admin@" + addr, IdentityFiles: []string{key}, RawCommands: true,
		KnownHosts: []string{known}, CommandTimeout: 10 * time.Second}
}
