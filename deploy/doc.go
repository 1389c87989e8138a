// Package deploy holds what runs hardtrail in production (the systemd unit, the sudoers
// alternative, an example configuration, Prometheus alert rules and a Grafana dashboard), and
// the tests that keep those files working; it has no Go API.
package deploy
