package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-io/berth/core/api"
)

const nameHelp = `NAME is the container's name in its playbook ("db"), or "stack/name" when
two stacks have a container of that name.`

// resolveContainer turns what the user typed into the "stack/name" the API
// takes, using the list of containers berthd has.
func resolveContainer(ctx context.Context, c *api.Client, arg string) (string, error) {
	cs, err := c.Containers(ctx)
	if err != nil {
		return "", fmt.Errorf("list containers: %w", err)
	}
	if stack, name, ok := strings.Cut(arg, "/"); ok {
		for _, ct := range cs {
			if ct.Stack == stack && ct.Name == name {
				return arg, nil
			}
		}
		return "", fmt.Errorf("no container %q: %w: see berth ps -a", arg, api.ErrNotFound)
	}
	var stacks []string
	for _, ct := range cs {
		if ct.Name == arg {
			stacks = append(stacks, ct.Stack)
		}
	}
	switch len(stacks) {
	case 0:
		return "", fmt.Errorf("no container %q: %w: see berth ps -a", arg, api.ErrNotFound)
	case 1:
		return stacks[0] + "/" + arg, nil
	}
	sort.Strings(stacks)
	return "", usageError("container name %q is in several stacks (%s): write stack/name, e.g. %s/%s",
		arg, strings.Join(stacks, ", "), stacks[0], arg)
}

// withContainer dials berthd and resolves args[0] before calling f.
func (e *env) withContainer(ctx context.Context, arg string, f func(c *api.Client, name string) error) error {
	c, err := e.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	name, err := resolveContainer(ctx, c, arg)
	if err != nil {
		return err
	}
	return f(c, name)
}

func newPsCommand(e *env) *cobra.Command {
	var all, asJSON bool
	cmd := &cobra.Command{
		Use:   "ps [-a] [--json]",
		Short: "List containers",
		Long: `List the running containers (all of them with -a), one row each:
name, stack, state, health, pid, status, restarts, top image, network addresses.`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			c, err := e.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			cs, err := c.Containers(cmd.Context())
			if err != nil {
				return fmt.Errorf("ps: %w", err)
			}
			var rows []api.ContainerStatus
			for _, ct := range cs {
				if all || isActive(ct.State) {
					rows = append(rows, ct)
				}
			}
			sort.SliceStable(rows, func(i, j int) bool {
				if rows[i].Stack != rows[j].Stack {
					return rows[i].Stack < rows[j].Stack
				}
				return rows[i].Name < rows[j].Name
			})
			if asJSON {
				return writeJSON(e.Out, containersJSON(rows))
			}
			return e.printContainers(rows)
		}),
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "show all containers, not only running ones")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the list as JSON")
	return cmd
}

func isActive(state string) bool {
	return state == "running" || state == "paused" || state == "restarting"
}

func (e *env) printContainers(rows []api.ContainerStatus) error {
	tw := tabwriter.NewWriter(e.Out, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTACK\tSTATE\tHEALTH\tPID\tSTATUS\tRESTARTS\tIMAGES\tNETWORKS")
	for _, ct := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n",
			ct.Name, ct.Stack, ct.State, dash(ct.Health), pidText(ct.PID), e.statusText(ct),
			ct.Restarts, imagesText(ct.Images), networksText(ct.Networks))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Why a container is down or unhealthy, under the table.
	for _, ct := range rows {
		if ct.Message != "" {
			fmt.Fprintf(e.Out, "\n%s/%s: %s", ct.Stack, ct.Name, ct.Message)
		}
	}
	for _, ct := range rows {
		if ct.Message != "" {
			fmt.Fprintln(e.Out)
			break
		}
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func pidText(pid int) string {
	if pid <= 0 {
		return "-"
	}
	return fmt.Sprint(pid)
}

// statusText is docker's STATUS column: "Up 3 minutes", "Exited (3) 2 minutes ago".
func (e *env) statusText(ct api.ContainerStatus) string {
	now := e.now()
	switch ct.State {
	case "running", "paused":
		s := "Up"
		if !ct.StartedAt.IsZero() {
			s += " " + humanDuration(now.Sub(ct.StartedAt))
		}
		if ct.State == "paused" {
			s += " (Paused)"
		}
		return s
	case "created":
		return "Created"
	case "restarting":
		if ct.FinishedAt.IsZero() && ct.Message != "" {
			return "Restarting (start failed)"
		}
		return fmt.Sprintf("Restarting (%d)%s", ct.ExitCode, ago(now, ct.FinishedAt))
	case "failed":
		if ct.FinishedAt.IsZero() {
			return "Failed to start"
		}
		return fmt.Sprintf("Failed (%d)%s", ct.ExitCode, ago(now, ct.FinishedAt))
	case "exited", "stopped":
		return fmt.Sprintf("Exited (%d)%s", ct.ExitCode, ago(now, ct.FinishedAt))
	}
	return dash(ct.State)
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return " " + humanDuration(now.Sub(t)) + " ago"
}

// imagesText is the top image, with how many more are stacked below it.
func imagesText(images []string) string {
	switch len(images) {
	case 0:
		return "-"
	case 1:
		return images[0]
	}
	return fmt.Sprintf("%s (+%d)", images[len(images)-1], len(images)-1)
}

func networksText(nets map[string]string) string {
	if len(nets) == 0 {
		return "-"
	}
	names := make([]string, 0, len(nets))
	for n := range nets {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + "=" + nets[n]
	}
	return strings.Join(parts, ",")
}

type containerJSON struct {
	Name       string            `json:"name"`
	Stack      string            `json:"stack"`
	State      string            `json:"state"`
	Health     string            `json:"health,omitempty"`
	PID        int               `json:"pid,omitempty"`
	StartedAt  *time.Time        `json:"started_at,omitempty"`
	FinishedAt *time.Time        `json:"finished_at,omitempty"`
	ExitCode   int               `json:"exit_code"`
	Restarts   int               `json:"restarts"`
	Images     []string          `json:"images"`
	Networks   map[string]string `json:"networks"`
	Message    string            `json:"message,omitempty"`
}

func containersJSON(rows []api.ContainerStatus) []containerJSON {
	out := []containerJSON{}
	for _, ct := range rows {
		j := containerJSON{Name: ct.Name, Stack: ct.Stack, State: ct.State, Health: ct.Health, PID: ct.PID,
			ExitCode: ct.ExitCode, Restarts: ct.Restarts, Images: ct.Images, Networks: ct.Networks, Message: ct.Message}
		if !ct.StartedAt.IsZero() {
			j.StartedAt = &ct.StartedAt
		}
		if !ct.FinishedAt.IsZero() {
			j.FinishedAt = &ct.FinishedAt
		}
		if j.Images == nil {
			j.Images = []string{}
		}
		if j.Networks == nil {
			j.Networks = map[string]string{}
		}
		out = append(out, j)
	}
	return out
}

func newPauseCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "pause NAME",
		Short: "Freeze a container's processes",
		Long:  "Freeze every process of the container (cgroup freezer) until berth resume.\n\n" + nameHelp,
		Args:  cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			return e.withContainer(cmd.Context(), args[0], func(c *api.Client, name string) error {
				if err := c.Pause(cmd.Context(), name); err != nil {
					return fmt.Errorf("pause %s: %w", args[0], err)
				}
				fmt.Fprintf(e.Out, "Paused %s\n", name)
				return nil
			})
		}),
	}
}

func newResumeCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "resume NAME",
		Aliases: []string{"unpause"},
		Short:   "Resume a paused container",
		Long:    "Thaw a container frozen by berth pause.\n\n" + nameHelp,
		Args:    cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			return e.withContainer(cmd.Context(), args[0], func(c *api.Client, name string) error {
				if err := c.Resume(cmd.Context(), name); err != nil {
					return fmt.Errorf("resume %s: %w", args[0], err)
				}
				fmt.Fprintf(e.Out, "Resumed %s\n", name)
				return nil
			})
		}),
	}
}

func newLogsCommand(e *env) *cobra.Command {
	var opts api.LogOptions
	var timestamps bool
	cmd := &cobra.Command{
		Use:   "logs [-f] [--tail N] [--timestamps] NAME",
		Short: "Print a container's output",
		Long: `Print what the container wrote, oldest first: its stdout to stdout and its
stderr to stderr. With -f berth keeps printing new lines until interrupted.

` + nameHelp,
		Args: cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			if opts.Tail < 0 {
				return usageError("--tail %d: give a number of lines, 0 for all", opts.Tail)
			}
			return e.withContainer(cmd.Context(), args[0], func(c *api.Client, name string) error {
				err := c.Logs(cmd.Context(), name, opts, func(l api.LogLine) error {
					w := e.Out
					if l.Stream == "stderr" {
						w = e.Err
					}
					var err error
					if timestamps {
						_, err = fmt.Fprintf(w, "%s %s\n", l.Time.UTC().Format(time.RFC3339Nano), l.Text)
					} else {
						_, err = fmt.Fprintln(w, l.Text)
					}
					return err
				})
				if err != nil && !(opts.Follow && errors.Is(err, context.Canceled)) {
					return fmt.Errorf("logs %s: %w", args[0], err)
				}
				return nil
			})
		}),
	}
	cmd.Flags().BoolVarP(&opts.Follow, "follow", "f", false, "keep printing new lines")
	cmd.Flags().IntVarP(&opts.Tail, "tail", "n", 0, "print only the last N lines (0: all)")
	cmd.Flags().BoolVarP(&timestamps, "timestamps", "t", false, "prefix each line with the time berth read it")
	return cmd
}

func newExecCommand(e *env) *cobra.Command {
	var interactive bool
	var envVars []string
	cmd := &cobra.Command{
		Use:   "exec [-i] [-e K=V]... NAME -- CMD [ARG...]",
		Short: "Run a command in a running container",
		Long: `Run a command inside a running container and exit with its exit code.
With -i berth's stdin is copied to the command; without it the command's
stdin is empty. Put "--" before the command so its flags stay its own.

` + nameHelp,
		Args: cobra.MinimumNArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			target, argv := args[0], args[1:]
			if len(argv) > 0 && argv[0] == "--" {
				argv = argv[1:]
			}
			if len(argv) == 0 {
				return usageError("exec %s: no command given: write berth exec %s -- CMD [ARG...]", target, target)
			}
			for _, kv := range envVars {
				if !strings.Contains(kv, "=") {
					return usageError("-e %q: write -e NAME=value", kv)
				}
			}
			var stdin io.Reader
			if interactive {
				stdin = e.In
			}
			var code int
			err := e.withContainer(cmd.Context(), target, func(c *api.Client, name string) error {
				var err error
				code, err = c.Exec(cmd.Context(), name, api.ExecRequest{Args: argv, Env: envVars}, stdin, e.Out, e.Err)
				if err != nil {
					return fmt.Errorf("exec in %s: %w", target, err)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		}),
	}
	// Everything after NAME is the command's, flags included.
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "copy stdin to the command")
	cmd.Flags().StringArrayVarP(&envVars, "env", "e", nil, "set an environment variable: NAME=value (repeatable)")
	return cmd
}
