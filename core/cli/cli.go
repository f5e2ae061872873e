// Package cli owns the `berth` command line: parsing, talking to berthd
// through core/api's Client, and printing results for people (tables,
// diagnostics against the user's own files) and for scripts (--json, exit
// codes). It holds no daemon logic.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/berth-io/berth/core/api"
)

// Exit codes of berth, as `berth --help` documents them.
const (
	ExitOK          = 0
	ExitError       = 1
	ExitUsage       = 2
	ExitFmtChanges  = 3
	ExitUnreachable = 125
)

// Streams are the standard streams a command reads and writes.
type Streams struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// Main runs berth with the process's arguments, streams and environment and
// returns the exit code; SIGINT and SIGTERM cancel the running command.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, os.Args[1:], Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
}

// Run runs berth with args (without the program name) and returns the exit
// code. Errors are printed to s.Err as one line, "berth: <what>: <what to do>".
func Run(ctx context.Context, args []string, s Streams) int {
	e := &env{Streams: s, now: time.Now, getenv: os.Getenv}
	root := newRootCommand(e)
	root.SetArgs(normalizeArgs(args))
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code, msg := classify(err)
	if msg != "" {
		fmt.Fprintf(s.Err, "berth: %s\n", msg)
	}
	return code
}

// env is what commands share: the streams, the clock, the environment and
// the global flags.
type env struct {
	Streams
	now    func() time.Time
	getenv func(string) string
	host   string
}

// dial connects to berthd at --host.
func (e *env) dial(ctx context.Context) (*api.Client, error) {
	return api.Dial(ctx, e.host)
}

// isTerminal says whether w is a terminal (for progress bars and colors).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// commandError marks an error returned by a command's own code, as opposed
// to one cobra returns while parsing (which is a usage error).
type commandError struct{ err error }

func (e *commandError) Error() string { return e.err.Error() }
func (e *commandError) Unwrap() error { return e.err }

// exitError ends berth with code; with a nil err nothing more is printed
// (the command has said what it had to say).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// usageError is a mistake on the command line that the command found.
func usageError(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// runE adapts a command function so its errors are told apart from cobra's.
func runE(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := f(cmd, args); err != nil {
			return &commandError{err: err}
		}
		return nil
	}
}

// classify picks the exit code for err and the message to print (empty
// when nothing more should be printed).
func classify(err error) (int, string) {
	var ce *commandError
	if !errors.As(err, &ce) {
		// cobra's own parse errors: unknown command or flag, wrong args.
		return ExitUsage, fmt.Sprintf("%v: see `berth --help`", err)
	}
	var xe *exitError
	if errors.As(err, &xe) {
		if xe.err == nil {
			return xe.code, ""
		}
		return xe.code, xe.err.Error()
	}
	switch {
	case errors.Is(err, api.ErrUnreachable):
		return ExitUnreachable, err.Error()
	case errors.Is(err, context.Canceled):
		return ExitError, "interrupted"
	}
	return ExitError, err.Error()
}

// normalizeArgs accepts the single-dash long flags Terraform users type
// (-var, -check, -diff, -write) by rewriting them to their double-dash form,
// up to a "--" (after which arguments belong to someone else).
func normalizeArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		for _, name := range []string{"var", "check", "diff", "write"} {
			if a == "-"+name || strings.HasPrefix(a, "-"+name+"=") {
				a = "-" + a
				break
			}
		}
		out = append(out, a)
	}
	return out
}
