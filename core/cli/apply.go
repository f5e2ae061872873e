package cli

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-io/berth/core/api"
)

// applyRequest reads the playbook the user named, for plan and up.
func applyRequest(path string, varFlags []string) (api.ApplyRequest, error) {
	vars, err := parseVars(varFlags)
	if err != nil {
		return api.ApplyRequest{}, err
	}
	src, err := readFile(path)
	if err != nil {
		return api.ApplyRequest{}, err
	}
	return api.ApplyRequest{File: path, Source: src, Vars: vars}, nil
}

// counts returns how many actions of each kind p has.
func counts(p *api.Plan) map[api.ActionKind]int {
	n := map[api.ActionKind]int{}
	for _, a := range p.Actions {
		n[a.Kind]++
	}
	return n
}

// summary is "1 created, 1 replaced, 0 removed, 2 unchanged" style text.
func summary(p *api.Plan, create, replace, remove string) string {
	n := counts(p)
	return fmt.Sprintf("%d %s, %d %s, %d %s, %d unchanged",
		n[api.ActionCreate], create, n[api.ActionReplace], replace, n[api.ActionRemove], remove, n[api.ActionUnchanged])
}

func newPlanCommand(e *env) *cobra.Command {
	var varFlags []string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "plan [--var name=value]... FILE",
		Short: "Show what 'berth up' would change",
		Long: `Ask berthd what applying the playbook would change, without changing
anything: "+ create", "~ replace" (with the reason), "- remove". Problems in
the playbook, missing images included, are shown against the file.`,
		Args: cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			req, err := applyRequest(args[0], varFlags)
			if err != nil {
				return err
			}
			c, err := e.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			p, err := c.Plan(cmd.Context(), req)
			if err != nil {
				return e.diagnosticsFailed(fmt.Errorf("plan %s: %w", req.File, err), req.File, req.Source)
			}
			if asJSON {
				type actionJSON struct {
					Container string `json:"container"`
					Action    string `json:"action"`
					Reason    string `json:"reason,omitempty"`
				}
				out := struct {
					Stack   string       `json:"stack"`
					Actions []actionJSON `json:"actions"`
				}{Stack: p.Stack, Actions: []actionJSON{}}
				for _, a := range p.Actions {
					out.Actions = append(out.Actions, actionJSON{a.Container, string(a.Kind), a.Reason})
				}
				return writeJSON(e.Out, out)
			}
			printPlan(e, p)
			return nil
		}),
	}
	cmd.Flags().StringArrayVar(&varFlags, "var", nil, "set a playbook variable: name=value (repeatable)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON")
	return cmd
}

func printPlan(e *env, p *api.Plan) {
	n := counts(p)
	if n[api.ActionCreate]+n[api.ActionReplace]+n[api.ActionRemove] == 0 {
		fmt.Fprintf(e.Out, "Stack %q is up to date (%d unchanged).\n", p.Stack, n[api.ActionUnchanged])
		return
	}
	for _, a := range p.Actions {
		switch a.Kind {
		case api.ActionCreate:
			fmt.Fprintf(e.Out, "+ create %s\n", a.Container)
		case api.ActionReplace:
			if a.Reason != "" {
				fmt.Fprintf(e.Out, "~ replace %s (%s)\n", a.Container, a.Reason)
			} else {
				fmt.Fprintf(e.Out, "~ replace %s\n", a.Container)
			}
		case api.ActionRemove:
			fmt.Fprintf(e.Out, "- remove %s\n", a.Container)
		case api.ActionUnchanged:
		default:
			fmt.Fprintf(e.Out, "? %s %s\n", a.Kind, a.Container)
		}
	}
	fmt.Fprintf(e.Out, "\nPlan for stack %q: %s.\n", p.Stack, summary(p, "to create", "to replace", "to remove"))
}

// printEvent writes one progress line of up or down.
func (e *env) printEvent(ev api.Event) {
	t := ev.Time
	if t.IsZero() {
		t = e.now()
	}
	name := ev.Container
	if name == "" {
		name = "-"
	}
	fmt.Fprintf(e.Out, "%s  %-12s %s\n", t.Local().Format("15:04:05"), name, ev.Message)
}

func newUpCommand(e *env) *cobra.Command {
	var varFlags []string
	cmd := &cobra.Command{
		Use:   "up [--var name=value]... FILE",
		Short: "Apply a playbook: create, replace and remove containers",
		Long: `Apply the playbook and wait until every container is started (and healthy
where a dependent asks for it), printing each step. On a failure berth
prints the reason and exits 1; interrupting berth (Ctrl-C) stops the apply.`,
		Args: cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			req, err := applyRequest(args[0], varFlags)
			if err != nil {
				return err
			}
			c, err := e.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			p, err := c.Up(cmd.Context(), req, e.printEvent)
			if err != nil {
				return e.diagnosticsFailed(fmt.Errorf("up %s: %w", req.File, err), req.File, req.Source)
			}
			fmt.Fprintf(e.Out, "Stack %q is up: %s.\n", p.Stack, summary(p, "created", "replaced", "removed"))
			return nil
		}),
	}
	cmd.Flags().StringArrayVar(&varFlags, "var", nil, "set a playbook variable: name=value (repeatable)")
	return cmd
}

func newDownCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "down STACK",
		Short: "Stop a stack and remove its containers",
		Long: `Stop the stack's containers in reverse dependency order and remove them.
Persistent volumes are kept. The stack must be named: on an ECU a bare
"down" must not stop the vehicle's functions by accident.`,
		Args: cobra.MaximumNArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			c, err := e.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			var stack string
			if len(args) == 1 {
				stack = args[0]
			} else {
				cs, err := c.Containers(cmd.Context())
				if err != nil {
					return fmt.Errorf("down: list stacks: %w", err)
				}
				set := map[string]bool{}
				for _, ct := range cs {
					set[ct.Stack] = true
				}
				stacks := make([]string, 0, len(set))
				for s := range set {
					stacks = append(stacks, s)
				}
				sort.Strings(stacks)
				if len(stacks) == 0 {
					return usageError("down: name the stack to stop (no stack is running)")
				}
				return usageError("down: name the stack to stop, e.g. berth down %s (running: %s)", stacks[0], strings.Join(stacks, ", "))
			}
			if err := c.Down(cmd.Context(), stack, e.printEvent); err != nil {
				return fmt.Errorf("down %s: %w", stack, err)
			}
			fmt.Fprintf(e.Out, "Stack %q is down.\n", stack)
			return nil
		}),
	}
	return cmd
}
