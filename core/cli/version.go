package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/berth-io/berth/core/api"
	"github.com/berth-io/berth/core/version"
)

func newVersionCommand(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version [--json]",
		Short: "Print berth's version, and berthd's when it is reachable",
		Args:  cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			var server *api.VersionInfo
			var serverErr error
			c, err := e.dial(cmd.Context())
			if err == nil {
				defer c.Close()
				var v api.VersionInfo
				if v, err = c.Version(cmd.Context()); err == nil {
					server = &v
				}
			}
			serverErr = err
			if serverErr != nil && !errors.Is(serverErr, api.ErrUnreachable) {
				return fmt.Errorf("version: %w", serverErr)
			}
			if asJSON {
				type serverJSON struct {
					Version string `json:"version"`
					Runtime string `json:"runtime"`
				}
				out := struct {
					Client struct {
						Version string `json:"version"`
					} `json:"client"`
					Server *serverJSON `json:"server"`
				}{}
				out.Client.Version = version.Version
				if server != nil {
					out.Server = &serverJSON{Version: server.Version, Runtime: server.Runtime}
				}
				return writeJSON(e.Out, out)
			}
			fmt.Fprintf(e.Out, "Client: berth %s\n", version.Version)
			if server != nil {
				fmt.Fprintf(e.Out, "Server: berthd %s (runtime %s)\n", server.Version, dash(server.Runtime))
			} else {
				fmt.Fprintf(e.Out, "Server: not reachable (%v)\n", serverErr)
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the versions as JSON")
	return cmd
}
