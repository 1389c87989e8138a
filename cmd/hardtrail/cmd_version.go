package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hardtrail/hardtrail/internal/buildinfo"
)

func init() { commands = append(commands, versionCmd) }

func versionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print version, revision and Go version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if a.json() {
				return a.printJSON(map[string]string{"version": buildinfo.Version, "revision": buildinfo.Revision, "goversion": buildinfo.GoVersion})
			}
			_, err := fmt.Fprintf(a.stdout, "hardtrail %s\n", buildinfo.String())
			return err
		},
	}
}
