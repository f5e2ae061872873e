package cli

import (
	"github.com/spf13/cobra"

	"github.com/berth-io/berth/core/api"
)

const rootLong = `berth runs stacks of containers on an ECU through berthd, the berth daemon.

A stack is described by an HCL playbook: check it with 'berth validate',
see what would change with 'berth plan', apply it with 'berth up'.

Containers are named as in their playbook ("db"). When two stacks both have
a container of that name, write "stack/name" ("demo/db").

berth talks to berthd over a unix socket: --host, or $BERTH_HOST, or
` + api.DefaultSocket + `. The socket is root-only unless berthd was told
to share it with a group.

Exit codes:
  0    success
  1    the command failed (the message says why)
  2    usage error: bad flags or arguments, or an ambiguous container name
  3    berth fmt --check: some file is not canonically formatted
  125  berthd could not be reached
  berth exec exits with the code of the command it ran.`

func newRootCommand(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:           "berth",
		Short:         "Run and inspect container stacks on berthd",
		Long:          rootLong,
		SilenceErrors: true,
		SilenceUsage:  true,
		// Bare `berth` prints help; an unknown subcommand is a usage error.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.CompletionOptions.DisableDefaultCmd = true
	host := e.getenv("BERTH_HOST")
	if host == "" {
		host = api.DefaultSocket
	}
	root.PersistentFlags().StringVar(&e.host, "host", host, "berthd's socket (env BERTH_HOST)")

	image := &cobra.Command{
		Use:   "image",
		Short: "Manage images in berthd's store",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	image.AddCommand(newImageImportCommand(e), newImageRemoveCommand(e), newImagesCommand(e, "ls"))

	root.AddCommand(
		newValidateCommand(e),
		newFmtCommand(e),
		newPlanCommand(e),
		newUpCommand(e),
		newDownCommand(e),
		newPsCommand(e),
		newPauseCommand(e),
		newResumeCommand(e),
		newLogsCommand(e),
		newExecCommand(e),
		newImagesCommand(e, "images"),
		newDevicesCommand(e),
		newCANCommand(e),
		image,
		newVersionCommand(e),
	)
	withUsageOnBadArgs(root)
	return root
}

// withUsageOnBadArgs makes a wrong number of arguments answer with the
// command's usage line ("usage: berth validate [flags] FILE") rather than
// cobra's "accepts 1 arg(s), received 0".
func withUsageOnBadArgs(cmd *cobra.Command) {
	if check := cmd.Args; check != nil {
		cmd.Args = func(c *cobra.Command, args []string) error {
			if err := check(c, args); err != nil {
				return usageError("usage: %s", c.UseLine())
			}
			return nil
		}
	}
	for _, sub := range cmd.Commands() {
		withUsageOnBadArgs(sub)
	}
}
